"""Operating the standalone server: reload on SIGHUP, connection limits, IPv6,
refusing what is not AMTP on the implicit-TLS port, graceful stop on SIGTERM.

Run: python3 tests/integration/test_operations.py --build build
"""

import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amtp_world import close_world, free_port, main, open_world  # noqa: E402

WORLD = None
V6_PORT = None


def setUpModule():
    global WORLD, V6_PORT
    V6_PORT = free_port()
    WORLD = open_world(limits="max-connections-per-ip = 3\n", listen_extra="private = [::1]:%d\n" % V6_PORT)


def tearDownModule():
    close_world(WORLD)


def send_raw_and_read(payload):
    """Bytes straight onto the implicit-TLS port, no TLS; everything the server sends
    back until it closes."""
    with socket.create_connection(("127.0.0.3", WORLD.public_port), timeout=10,
                                  source_address=("127.0.0.2", 0)) as raw:
        raw.sendall(payload)
        data = b""
        try:
            while True:
                chunk = raw.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    return data


def restore(path, text):
    with open(path, "w") as f:
        f.write(text)


class Operations(unittest.TestCase):
    def test_sighup_reloads_the_policy_for_new_sessions(self):
        old = WORLD.session()
        self.addCleanup(old.close)
        self.assertIn("MPC DENY=*/optout", old.cmd("EHLO mx.a.test"))
        policy = os.path.join(WORLD.dir, "policy.xml")
        with open(policy) as f:
            original = f.read()
        self.addCleanup(restore, policy, original)
        with open(policy, "w") as f:
            f.write(original.replace('<deny mpc="*/optout"/>', '<deny mpc="*/optout"/> <deny mpc="com/*"/>'))
        os.kill(WORLD.frontend_proc.pid, signal.SIGHUP)
        deadline = time.time() + 10
        while "event=reload result=pass" not in WORLD.frontend_log() and time.time() < deadline:
            time.sleep(0.05)
        new = WORLD.session()
        self.addCleanup(new.close)
        self.assertIn("MPC DENY=*/optout DENY=com/*", new.cmd("EHLO mx.a.test"))
        # The session that started before the reload keeps its rules and goes on.
        self.assertTrue(old.cmd("MAIL FROM:<shop@a.test> MPC=com/optin").startswith("250"))

    def test_a_bad_policy_on_sighup_keeps_the_old_configuration(self):
        policy = os.path.join(WORLD.dir, "policy.xml")
        with open(policy) as f:
            original = f.read()
        self.addCleanup(restore, policy, original)
        with open(policy, "w") as f:
            f.write("<amtp-policy><advertise><deny mpc='*/spam'/></advertise></amtp-policy>")
        os.kill(WORLD.frontend_proc.pid, signal.SIGHUP)
        deadline = time.time() + 10
        while "event=reload result=fail" not in WORLD.frontend_log() and time.time() < deadline:
            time.sleep(0.05)
        self.assertIn("event=reload result=fail", WORLD.frontend_log())
        self.assertIn("policy.xml:1", WORLD.frontend_log())
        s = WORLD.session()
        self.addCleanup(s.close)
        self.assertTrue(s.cmd("EHLO mx.a.test").startswith("250-"))

    def test_connections_beyond_the_per_ip_limit_get_421_4_7_0(self):
        held = [WORLD.session(source="127.0.0.20") for _ in range(3)]
        try:
            extra = WORLD.session(source="127.0.0.20")
            self.assertTrue(extra.greeting.startswith("421 4.7.0"), extra.greeting)
            extra.close()
            other = WORLD.session(source="127.0.0.21")  # another address is not affected
            self.assertTrue(other.greeting.startswith("220"))
            other.close()
        finally:
            for s in held:
                s.close()

    def test_a_private_listener_on_ipv6_serves_amtp(self):
        s = WORLD.session(cert="private", source="::1", host="::1", port=V6_PORT)
        self.addCleanup(s.close)
        self.assertTrue(s.cmd("EHLO host1.customers.isp.test").startswith("250-"))

    def test_plaintext_smtp_on_the_implicit_tls_port_gets_no_smtp_reply(self):
        data = send_raw_and_read(b"EHLO mx.a.test\r\nMAIL FROM:<a@a.test> MPC=per/individual\r\n")
        self.assertNotIn(b"220", data)
        self.assertNotIn(b"250", data)

    def test_a_resumed_tls_session_keeps_its_verified_identity(self):
        first = WORLD.session()
        self.assertTrue(first.cmd("EHLO mx.a.test").startswith("250-"))  # tickets arrive by now
        ticket = first.sock.session
        first.close()
        again = WORLD.session(tls_session=ticket)
        self.addCleanup(again.close)
        self.assertTrue(again.sock.session_reused)
        self.assertTrue(again.cmd("EHLO mx.a.test").startswith("250-"))
        # The same ticket from another address is not that identity any more.
        elsewhere = WORLD.session(source="127.0.0.4", tls_session=ticket)
        self.addCleanup(elsewhere.close)
        self.assertTrue(elsewhere.sock.session_reused)
        self.assertTrue(elsewhere.cmd("EHLO mx.a.test").startswith("504 5.7.1 Authentication failed: certificate invalid"))

    def test_a_private_key_readable_by_others_is_warned_about(self):
        import shutil
        import subprocess
        for mode, warned in ((0o644, True), (0o600, False)):
            key = os.path.join(WORLD.dir, "key-%o.pem" % mode)
            shutil.copy(WORLD.p("server-b.key"), key)
            os.chmod(key, mode)
            with open(WORLD.config) as f:
                text = f.read().replace(WORLD.p("server-b.key"), key)
            config = os.path.join(WORLD.dir, "key-%o.ini" % mode)
            with open(config, "w") as f:
                f.write(text)
            r = subprocess.run([os.path.join(WORLD.bin, "amtpd"), "-c", config, "--check-config"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual("event=warning key=" in r.stderr, warned, r.stderr)

    def test_tls_1_0_and_1_1_offers_are_refused_with_a_protocol_version_alert(self):
        import subprocess
        for flag in ("-tls1", "-tls1_1"):
            r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.3:%d" % WORLD.public_port, flag,
                                "-cipher", "DEFAULT:@SECLEVEL=0", "-bind", "127.0.0.2:0"],
                               input=b"", capture_output=True, timeout=30)
            out = (r.stdout + r.stderr).decode("utf-8", "replace")
            self.assertIn("alert protocol version", out, flag)
            self.assertNotIn("220 mx.b.test", out)

    def test_random_bytes_on_the_implicit_tls_port_get_no_smtp_reply(self):
        data = send_raw_and_read(os.urandom(4096))
        self.assertNotIn(b"220", data)
        self.assertIsNone(WORLD.frontend_proc.poll())

    def test_amtpd_drops_root_after_binding_and_still_delivers(self):
        import pwd
        import re
        import subprocess
        from amtp_world import free_port, wait_for_port
        if os.geteuid() != 0:
            self.fail("dropping privileges can only be tested as root (CI runs as root)")
        nobody = pwd.getpwnam("nobody")
        port, private = free_port(), free_port()
        maildir = os.path.join(WORLD.dir, "mail-nobody")
        os.makedirs(maildir)
        os.chmod(maildir, 0o777)
        WORLD.add_mailbox("dropped", root=maildir)
        os.chmod(WORLD.dir, 0o755)  # the unprivileged daemon must reach its Maildir root
        with open(WORLD.config) as f:
            text = f.read()
        text = re.sub(r"public = 127.0.0.3:\d+", "public = 127.0.0.3:%d" % port, text)
        text = re.sub(r"private = 127.0.0.3:\d+", "private = 127.0.0.3:%d" % private, text)
        text = re.sub(r"maildir-root = .*", "maildir-root = " + maildir, text)
        text = re.sub(r"directory = .*queue-b", "directory = " + os.path.join(WORLD.dir, "queue-nobody"), text)
        text = text.replace("hostname = mx.b.test", "hostname = mx.b.test\nuser = nobody")
        text = re.sub(r"private = \[::1\]:\d+\n", "", text)
        config = os.path.join(WORLD.dir, "nobody.ini")
        with open(config, "w") as f:
            f.write(text)
        proc = subprocess.Popen([os.path.join(WORLD.bin, "amtpd"), "-c", config], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_for_port("127.0.0.3", port, proc)
            s = WORLD.session(port=port)
            s.cmd("EHLO mx.a.test")
            s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual")
            s.cmd("RCPT TO:<dropped@b.test>")
            s.cmd("DATA")
            reply = s.cmd("Subject: x\r\n\r\ny\r\n.")
            self.assertTrue(reply.startswith("250"), reply)
            s.close()
            # Read once the daemon has served a session: the kernel accepts on the bound
            # port before amtpd has finished starting (and dropped root).
            with open("/proc/%d/status" % proc.pid) as f:
                uid_line = [line for line in f if line.startswith("Uid:")][0]
            self.assertEqual(set(uid_line.split()[1:]), {str(nobody.pw_uid)})
            box = os.path.join(maildir, "b.test", "dropped", "new")
            files = os.listdir(box)
            self.assertEqual(len(files), 1)
            self.assertEqual(os.stat(os.path.join(box, files[0])).st_uid, nobody.pw_uid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    def test_zz_sigterm_stops_the_server_after_the_open_transaction(self):
        s = WORLD.session()
        s.cmd("EHLO mx.a.test")
        s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual")
        s.cmd("RCPT TO:<late@b.test>")
        s.cmd("DATA")
        s.send_raw(b"Subject: in flight\r\n\r\n")
        os.kill(WORLD.frontend_proc.pid, signal.SIGTERM)
        time.sleep(0.3)
        reply = s.cmd("still being written\r\n.")
        self.assertTrue(reply.startswith("250 2.0.0"), reply)
        self.assertTrue(s.reply().startswith("421 4.3.2"))
        s.close()
        self.assertEqual(WORLD.frontend_proc.wait(timeout=30), 0)
        self.assertEqual(len(WORLD.delivered("late")), 1)


if __name__ == "__main__":
    main()
