"""Connections past amtpd's limits cost no TLS handshake: past limits.max-connections or
limits.max-connections-per-ip the connection is closed at once (implicit TLS leaves no
cleartext way to answer) with one log line naming the limit; IPv6 clients count by
their limits.ipv6-prefix-length network; and accept() failing for want of descriptors
backs off instead of spinning, and service resumes once descriptors are free.

Run: python3 tests/integration/test_limits.py --build build
"""

import os
import re
import resource
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amtp_world import WireSession, close_world, free_port, main, open_world, wait_for_port  # noqa: E402

WORLD = None
V6_PORT = None


def setUpModule():
    global WORLD, V6_PORT
    V6_PORT = free_port()
    WORLD = open_world(limits="max-connections-per-ip = 2\nmax-connections = 5\n",
                       listen_extra="public = [::1]:%d\n" % V6_PORT)


def tearDownModule():
    close_world(WORLD)


def closed_at_once(source, host="127.0.0.3", port=None, family=socket.AF_INET):
    """Connects without sending anything: True when the server closes the connection
    within 3 s without a byte (no TLS handshake; a server that starts one would wait
    for our ClientHello)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.bind((source, 0))
        s.connect((host, port or WORLD.public_port))
        try:
            return s.recv(1024) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def wait_log(pattern, seconds=10.0, log=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        text = log() if log else WORLD.frontend_log()
        if re.search(pattern, text):
            return True
        time.sleep(0.05)
    return False


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class Limits(unittest.TestCase):
    def setUp(self):
        time.sleep(0.3)  # the previous test's sessions are closed by now, server side too

    def hold(self, n, source, **kw):
        sessions = [WORLD.session(source=source, **kw) for _ in range(n)]
        for s in sessions:
            self.addCleanup(s.close)
            self.assertTrue(s.greeting.startswith("220"), s.greeting)
        return sessions

    def test_connections_past_the_per_ip_limit_are_closed_before_tls(self):
        self.hold(2, "127.0.0.20")
        self.assertTrue(closed_at_once("127.0.0.20"))
        self.assertTrue(wait_log(r"event=connect peer=127\.0\.0\.20 listener=public result=refused "
                                 r"reason=too_many_connections limit=max-connections-per-ip"))
        other = WORLD.session(source="127.0.0.21")  # another address is not affected
        self.addCleanup(other.close)
        self.assertTrue(other.greeting.startswith("220"))

    def test_connections_past_max_connections_are_closed_before_tls(self):
        held = self.hold(2, "127.0.0.22") + self.hold(2, "127.0.0.23") + self.hold(1, "127.0.0.24")
        self.assertEqual(len(held), 5)
        self.assertTrue(closed_at_once("127.0.0.25"))
        self.assertTrue(wait_log(r"event=connect peer=127\.0\.0\.25 listener=public result=refused "
                                 r"reason=too_many_connections limit=max-connections\b(?!-)"))
        for s in held:
            s.close()
        # Slots come back when sessions end.
        deadline = time.time() + 10
        while closed_at_once("127.0.0.25") and time.time() < deadline:
            time.sleep(0.2)
        again = WORLD.session(source="127.0.0.25")
        self.addCleanup(again.close)
        self.assertTrue(again.greeting.startswith("220"))

    def test_ipv6_clients_count_per_64_network(self):
        self.hold(2, "::1", host="::1", port=V6_PORT)
        self.assertTrue(closed_at_once("::1", host="::1", port=V6_PORT, family=socket.AF_INET6))
        self.assertTrue(wait_log(r"event=connect peer=::1 listener=public result=refused "
                                 r"reason=too_many_connections limit=max-connections-per-ip counted-as=::/64"))

    def test_accept_out_of_descriptors_backs_off_and_resumes(self):
        port, private = free_port(), free_port()
        with open(WORLD.config) as f:
            text = f.read()
        text = re.sub(r"public = 127.0.0.3:\d+", "public = 127.0.0.3:%d" % port, text)
        text = re.sub(r"private = 127.0.0.3:\d+", "private = 127.0.0.3:%d" % private, text)
        text = re.sub(r"public = \[::1\]:\d+\n", "", text)
        text = re.sub(r"directory = .*queue-b", "directory = " + os.path.join(WORLD.dir, "queue-emfile"), text)
        text = text.replace("max-connections = 5", "max-connections = 1000")
        text = text.replace("max-connections-per-ip = 2", "max-connections-per-ip = 1000")
        config = os.path.join(WORLD.dir, "emfile.ini")
        with open(config, "w") as f:
            f.write(text)
        limit = 48

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        log_path = os.path.join(WORLD.dir, "emfile.log")
        log = open(log_path, "w")
        self.addCleanup(log.close)
        proc = subprocess.Popen([os.path.join(WORLD.bin, "amtpd"), "-c", config], stdout=log,
                                stderr=subprocess.STDOUT, preexec_fn=low_limit)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait(timeout=30)))
        wait_for_port("127.0.0.3", port, proc)

        def read_log():
            with open(log_path) as f:
                return f.read()

        # Hold connections (TCP only: each waits in its TLS handshake) until amtpd has
        # no descriptor left, and a few more that wait in the kernel's backlog.
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        used = len(os.listdir("/proc/%d/fd" % proc.pid))
        for _ in range(limit - used + 3):
            s = socket.create_connection(("127.0.0.3", port), timeout=5, source_address=("127.0.0.26", 0))
            held.append(s)
        deadline = time.time() + 10
        while len(os.listdir("/proc/%d/fd" % proc.pid)) < limit and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        # Waiting for descriptors must not spin.
        before = cpu_seconds(proc.pid)
        time.sleep(3.0)
        spent = cpu_seconds(proc.pid) - before
        print("amtpd out of descriptors: %.2f s of CPU in 3 s" % spent, file=sys.stderr)
        self.assertLess(spent, 0.3)
        self.assertTrue(wait_log(r"event=accept result=fail reason=descriptors_exhausted", log=read_log),
                        read_log()[-2000:])
        self.assertEqual(read_log().count("reason=descriptors_exhausted"), 1, "one line per episode")
        # A client waiting in the backlog is served once descriptors are free again.
        waiting = socket.create_connection(("127.0.0.3", port), timeout=20, source_address=("127.0.0.2", 0))
        for s in held:
            s.close()
        held.clear()
        ctx = WireSession.make_context(WORLD, "client")
        tls = ctx.wrap_socket(waiting, server_hostname="mx.b.test")
        self.addCleanup(tls.close)
        tls.settimeout(20)
        data = b""
        while b"\r\n" not in data:
            chunk = tls.recv(4096)
            self.assertTrue(chunk, "closed before the greeting")
            data += chunk
        self.assertTrue(data.startswith(b"220 "), data)
        tls.sendall(b"EHLO mx.a.test\r\n")
        data = b""
        while not re.search(rb"(^|\r\n)250 ", data):
            chunk = tls.recv(4096)
            self.assertTrue(chunk, "closed before the EHLO reply: %r" % data)
            data += chunk
        self.assertIn(b"250-", data)


if __name__ == "__main__":
    main()
