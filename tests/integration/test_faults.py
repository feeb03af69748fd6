"""Faults against the standalone server, with nothing lost: a full disk, DNS gone
mid-session, a client that resets during DATA, slow clients, a flood of connections,
and SIGKILL under load followed by a restart.

Run: python3 tests/integration/test_faults.py --build build
"""

import os
import resource
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amtp_world import close_world, main, open_world  # noqa: E402

WORLD = None


def setUpModule():
    global WORLD
    WORLD = open_world(limits="max-connections = 600\nmax-connections-per-ip = 1000\n")


def tearDownModule():
    close_world(WORLD)


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Faults(unittest.TestCase):
    def deliver(self, rcpt, body):
        s = WORLD.session()
        try:
            s.cmd("EHLO mx.a.test")
            s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual")
            s.cmd("RCPT TO:<%s>" % rcpt)
            s.cmd("DATA")
            return s.cmd(body + "\r\n.")
        finally:
            s.close()

    def test_a_full_disk_gives_452_4_3_1_and_leaves_no_partial_message(self):
        box = os.path.join(WORLD.maildir, "b.test")
        os.makedirs(box, exist_ok=True)
        if os.geteuid() != 0:
            self.fail("this fault test mounts a tmpfs and must run as root (CI does)")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", box], check=True)
        try:
            WORLD.add_mailbox("full")  # the tmpfs hides the World's mailboxes
            reply = self.deliver("full@b.test", "Subject: big\r\n\r\n" + ("y" * 76 + "\r\n") * 2000)
            self.assertTrue(reply.startswith("452 4.3.1"), reply)
            left = []
            for d, _, files in os.walk(box):
                left += [os.path.join(d, f) for f in files]
            self.assertEqual(left, [])
        finally:
            subprocess.run(["umount", box], check=True)

    def test_a_client_that_resets_during_data_leaves_nothing_and_no_descriptor(self):
        pid = WORLD.frontend_proc.pid
        # One full session first: the resolver's thread and sockets open on first use.
        self.assertTrue(self.deliver("warm-up@b.test", "Subject: w\r\n\r\nw").startswith("250"))
        before = open_fds(pid)
        for _ in range(5):
            s = WORLD.session()
            s.cmd("EHLO mx.a.test")
            s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual")
            s.cmd("RCPT TO:<reset@b.test>")
            s.cmd("DATA")
            s.send_raw(b"Subject: cut\r\n\r\nhalf a message")
            raw = s.sock
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw.close()
        deadline = time.time() + 10
        while open_fds(pid) > before and time.time() < deadline:
            time.sleep(0.1)
        self.assertLessEqual(open_fds(pid), before)
        self.assertEqual(WORLD.delivered("reset"), [])
        self.assertTrue(self.deliver("after-reset@b.test", "Subject: ok\r\n\r\nfine").startswith("250"))

    def test_slow_clients_do_not_keep_a_good_client_waiting(self):
        slow = []
        try:
            for i in range(500):
                c = socket.create_connection(("127.0.0.3", WORLD.public_port), timeout=10,
                                             source_address=("127.0.0.%d" % (100 + i % 50), 0))
                c.send(b"\x16\x03\x01")  # the first bytes of a TLS hello, then nothing
                slow.append(c)
            start = time.time()
            reply = self.deliver("patient@b.test", "Subject: quick\r\n\r\nserved")
            elapsed = time.time() - start
            self.assertTrue(reply.startswith("250"), reply)
            self.assertLess(elapsed, 1.0, "a good client waited %.2f s behind slow ones" % elapsed)
        finally:
            for c in slow:
                c.close()

    def test_a_flood_of_connections_is_served_or_refused_before_tls_never_a_crash(self):
        # 1,000 client sockets in this process: lift the soft descriptor limit (often 1024).
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        results = []
        lock = threading.Lock()
        everyone_tried = threading.Event()  # served sessions stay open until then

        def record(result):
            with lock:
                results.append(result)
                if len(results) == 1000:
                    everyone_tried.set()

        def one(i):
            try:
                s = WORLD.session(source="127.0.0.%d" % (150 + i % 50))
                record(s.greeting[:9])
                everyone_tried.wait(60)
                s.close()
            except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError) as e:
                # Past max-connections amtpd closes before the TLS handshake; the client
                # sees a reset, a broken pipe or an end of file, as the timing falls.
                record("refused " + repr(e))
            except Exception as e:  # noqa: BLE001 - counted below
                record("error " + repr(e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(1000)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        print("connection flood: %d served, %d refused, %d others" % (sum(r.startswith("220") for r in results), sum(r.startswith("refused") for r in results), sum(not (r.startswith("220") or r.startswith("refused")) for r in results)), file=sys.stderr)
        errors = [r for r in results if not (r.startswith("220") or r.startswith("refused"))]
        self.assertEqual(errors, [])
        self.assertTrue(any(r.startswith("refused") for r in results), "max-connections = 600 was never reached")
        self.assertIn("reason=too_many_connections limit=max-connections", WORLD.frontend_log())
        self.assertIsNone(WORLD.frontend_proc.poll())
        self.assertTrue(self.deliver("after-flood@b.test", "Subject: ok\r\n\r\nstill here").startswith("250"))

    def test_zz_dns_gone_mid_session_gives_451_4_4_3(self):
        dns = WORLD.procs[0]
        dns.terminate()
        dns.wait(timeout=30)
        try:
            s = WORLD.session(source="127.0.0.22")
            reply = s.cmd("EHLO mx.a.test")
            s.close()
            self.assertTrue(reply.startswith("451 4.4.3"), reply)
        finally:
            WORLD.procs.remove(dns)
            WORLD.start_dns()

    def test_zzz_sigkill_under_load_loses_no_acknowledged_message(self):
        acknowledged = []
        lock = threading.Lock()
        stop = time.time() + 3

        def sender(n):
            i = 0
            while time.time() < stop:
                tag = "k%d-%d" % (n, i)
                i += 1
                try:
                    reply = self.deliver("kill@b.test", "Subject: %s\r\n\r\n%s" % (tag, tag))
                except Exception:  # noqa: BLE001 - the server is being killed
                    time.sleep(0.05)
                    continue
                if reply.startswith("250"):
                    with lock:
                        acknowledged.append(tag)

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        WORLD.kill_frontend(signal.SIGKILL)
        for t in threads:
            t.join(60)
        WORLD.start_frontend()
        stored = [m.split("\r\n\r\n", 1)[1].strip() for m in WORLD.delivered("kill")]
        self.assertTrue(acknowledged)
        for tag in acknowledged:
            self.assertEqual(stored.count(tag), 1, tag)


if __name__ == "__main__":
    main()
