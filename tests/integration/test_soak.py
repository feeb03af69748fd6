"""Soak: a bounded run of real sessions through the front-end, counting messages sent
against messages delivered (equal) and the server's resident memory after a warm-up
and at the end (growth under 5 %). AMTP_SOAK_SECONDS sets the length (CI: 60; the
long mode: 600).

Run: AMTP_SOAK_SECONDS=600 python3 tests/integration/test_soak.py --build build
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amtp_world import close_world, main, open_world  # noqa: E402

WORLD = None


def setUpModule():
    global WORLD
    WORLD = open_world()


def tearDownModule():
    close_world(WORLD)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


class Soak(unittest.TestCase):
    def test_a_bounded_soak_delivers_every_message_and_memory_stays_flat(self):
        seconds = float(os.environ.get("AMTP_SOAK_SECONDS", "60"))
        pid = WORLD.frontend_proc.pid
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
                    s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual")
                    s.cmd("RCPT TO:<soak@b.test>")
                    s.cmd("DATA")
                    reply = s.cmd("Subject: %s\r\n\r\n%s\r\n." % (tag, tag))
                    s.cmd("QUIT")
                finally:
                    s.close()
                with lock:
                    (sent if reply.startswith("250") else failures).append(tag if reply.startswith("250") else reply)

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(min(10.0, seconds / 6))  # warm-up: caches, pools and allocator arenas settle
        start_rss = rss_kib(pid)
        for t in threads:
            t.join(seconds + 120)
        end_rss = rss_kib(pid)
        delivered = sorted(m.split("\r\n\r\n", 1)[1].strip() for m in WORLD.delivered("soak"))
        print("soak: %d sent, %d delivered, RSS %d -> %d KiB" % (len(sent), len(delivered), start_rss, end_rss),
              file=sys.stderr)
        self.assertEqual(failures, [])
        self.assertGreater(len(sent), 0)
        self.assertEqual(delivered, sorted(sent))
        self.assertLess(end_rss, start_rss * 1.05, "resident memory grew from %d to %d KiB" % (start_rss, end_rss))


if __name__ == "__main__":
    main()
