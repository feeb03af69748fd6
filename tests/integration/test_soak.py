"""Soak: a bounded run of real sessions through the front-end, counting messages sent
against messages delivered (equal) and the front-end's resident memory after a warm-up
and at the end (growth under 5 %). Memory is the sum over the front-end's long-lived
processes (those of its session alive at both readings): amtpd alone, or the MTA's
daemon with our gate, filter or Node addon; per-connection children (Exim forks one
per session) come and go and are not counted.

In a sanitizer build (AMTP_SANITIZED=1) resident size says nothing (ASan keeps freed
memory in quarantine), so the memory check there is LeakSanitizer: amtpd is stopped with
SIGTERM and must exit 0 with no sanitizer report.

AMTP_SOAK_SECONDS sets the length (CI: 60; the long mode: 600).
Run: AMTP_SOAK_SECONDS=600 python3 tests/integration/test_soak.py --frontend exim --build build
"""

import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amtp_world import close_world, data_prefix, mail_line, main, open_world, session_kib  # noqa: E402

WORLD = None


def setUpModule():
    global WORLD
    WORLD = open_world()


def tearDownModule():
    close_world(WORLD)




class Soak(unittest.TestCase):
    def test_a_bounded_soak_delivers_every_message_and_memory_stays_flat(self):
        seconds = float(os.environ.get("AMTP_SOAK_SECONDS", "60"))
        sid = WORLD.frontend_proc.pid
        sent = []
        failures = []
        lock = threading.Lock()
        deadline = time.time() + seconds

        def sender(n):
            i = 0
            while time.time() < deadline:
                tag = "s%d-%d" % (n, i)
                i += 1
                s = WORLD.session()
                try:
                    s.cmd("EHLO mx.a.test")
                    s.cmd(mail_line())
                    s.cmd("RCPT TO:<soak@b.test>")
                    s.cmd("DATA")
                    reply = s.cmd("%sSubject: %s\r\n\r\n%s\r\n." % (data_prefix(), tag, tag))
                    s.cmd("QUIT")
                finally:
                    s.close()
                with lock:
                    (sent if reply.startswith("250") else failures).append(tag if reply.startswith("250") else reply)

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        # Warm-up: caches, pools and allocator arenas settle, and a garbage-collected heap
        # (Haraka's V8) finds its working size, which took Node 22 about 30 s of this load
        # (then flat); growth is judged over the rest of the run.
        time.sleep(min(60.0, seconds / 2))
        start = session_kib(sid)
        for t in threads:
            t.join(seconds + 120)
        # Spooling MTAs acknowledge first and write the Maildir a moment later.
        found = WORLD.wait_delivered("soak", len(sent), seconds=120.0)
        end = session_kib(sid)
        both = sorted(set(start) & set(end))
        start_rss = sum(start[p] for p in both)
        end_rss = sum(end[p] for p in both)
        delivered = sorted(m.split("\r\n\r\n", 1)[1].strip() for m in found)
        print("soak %s: %d sent, %d delivered, RSS of %d long-lived processes %d -> %d KiB (%+.1f %%)"
              % (WORLD.frontend, len(sent), len(delivered), len(both), start_rss, end_rss,
                 100.0 * (end_rss - start_rss) / max(start_rss, 1)), file=sys.stderr)
        self.assertEqual(failures, [])
        self.assertGreater(len(sent), 0)
        self.assertEqual(delivered, sorted(sent))
        self.assertIn(sid, both, "the front-end's own process was not measured")
        if os.environ.get("AMTP_SANITIZED") == "1":
            print("soak: sanitizer build, memory checked by LeakSanitizer at exit instead of RSS", file=sys.stderr)
            WORLD.kill_frontend(signal.SIGTERM)
            log = WORLD.frontend_log()
            self.assertNotIn("Sanitizer", log)
            self.assertEqual(WORLD.frontend_exit_status, 0, log[-2000:])
        else:
            self.assertLess(end_rss, start_rss * 1.05,
                            "resident memory grew from %d to %d KiB" % (start_rss, end_rss))


if __name__ == "__main__":
    main()
