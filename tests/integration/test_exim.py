"""Exim as an AMTP server (plugins/exim): what only the Exim front-end shows.

Run: python3 tests/integration/test_exim.py --frontend exim --build build
The shared rules are in test_wire.py; these tests cover Exim's side of profile B5 (the
AMTP-MPC header carrier), the fields Exim writes on delivery, the module's log lines,
and the generator. Exim acknowledges a message once it is in its spool and delivers
it a moment later, so Maildir checks here wait for the delivery (wait_delivered).
"""

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amtp_world  # noqa: E402
from amtp_world import close_world, main, open_world  # noqa: E402
from exim_client import EximClient  # noqa: E402

WORLD = None
EX_OK, EX_CONFIG = 0, 78


def setUpModule():
    global WORLD
    if amtp_world.ARGS.frontend != "exim":
        raise unittest.SkipTest("Exim-specific tests: run with --frontend exim")
    WORLD = open_world()


def tearDownModule():
    if WORLD:
        close_world(WORLD)


def read(path):
    with open(path) as f:
        return f.read()


def wait_delivered(mailbox, count=1, seconds=10.0):
    """The messages of a mailbox once `count` of them have arrived (or the deadline)."""
    deadline = time.time() + seconds
    while True:
        messages = WORLD.delivered(mailbox)
        if len(messages) >= count or time.time() > deadline:
            return messages
        time.sleep(0.05)


class Base(unittest.TestCase):
    def authenticated(self, **kw):
        s = WORLD.session(**kw)
        self.addCleanup(s.close)
        reply = s.cmd("EHLO mx.a.test")
        self.assertTrue(reply.startswith("250-mx.b.test"), reply)
        return s

    def assertReply(self, reply, prefix):
        self.assertTrue(reply.startswith(prefix), "expected %r, got %r" % (prefix, reply))

    def send(self, data, rcpts=("bob@b.test",), sender="alice@a.test"):
        s = self.authenticated()
        self.assertReply(s.cmd("MAIL FROM:<%s>" % sender), "250 2.1.0")
        for r in rcpts:
            self.assertReply(s.cmd("RCPT TO:<%s>" % r), "250 2.1.5")
        self.assertReply(s.cmd("DATA"), "354")
        return s.cmd(data + ".")


class HeaderCarrier(Base):
    def test_mail_with_the_mpc_parameter_is_refused_by_exim_so_clients_fall_back(self):
        # Exim refuses unknown MAIL parameters before any ACL runs (profile B5's trigger).
        s = self.authenticated()
        reply = s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual")
        self.assertReply(reply, "501")

    def test_ehlo_reply_has_no_mpc_line(self):
        s = WORLD.session()
        self.addCleanup(s.close)
        self.assertNotIn("MPC", s.cmd("EHLO mx.a.test"))

    def test_two_carrier_fields_are_refused_with_501_5_5_4(self):
        reply = self.send("AMTP-MPC: per/individual\r\nAMTP-MPC: per/individual\r\nSubject: two\r\n\r\nx\r\n")
        self.assertReply(reply, "501 5.5.4 Exactly one MPC parameter allowed")

    def test_one_denying_recipient_refuses_the_whole_message(self):
        # Per-recipient rules can only be applied after DATA: one verdict per message.
        reply = self.send("AMTP-MPC: com/optin\r\nSubject: shop\r\n\r\nx\r\n",
                          rcpts=("carol@b.test", "nocom@b.test"), sender="shop@a.test")
        self.assertReply(reply, "550 5.7.1 MPC policy violation")
        time.sleep(0.5)
        self.assertEqual(WORLD.delivered("carol"), [])

    def test_carrier_is_removed_and_trace_fields_lead_the_delivered_message(self):
        reply = self.send("AMTP-MPC: ngo/optin\r\nSubject: carrier\r\n\r\nbody\r\n", rcpts=("dora@b.test",))
        self.assertReply(reply, "250 2.0.0")
        messages = wait_delivered("dora")
        self.assertEqual(len(messages), 1)
        m = messages[0]
        self.assertNotIn("AMTP-MPC", m)
        fields = [line.split(":", 1)[0] for line in m.split("\r\n\r\n", 1)[0].split("\r\n")
                  if line and not line[0].isspace()]
        self.assertEqual(fields, ["Received", "Authentication-Results", "MPC", "Subject"])
        self.assertIn("\r\nMPC: ngo/optin\r\nSubject: carrier\r\n\r\nbody\r\n", m)
        self.assertIn("for <dora@b.test>", m)


class Delivery(Base):
    def test_amtp_send_falls_back_to_the_carrier_and_exim_delivers(self):
        r = WORLD.amtp_send(["--mpc", "per/individual", "-f", "alice@a.test", "erin@b.test"],
                            message="Subject: hello\r\n\r\nHi Erin.\r\n.leading dot\r\n")
        self.assertEqual(r.returncode, EX_OK, r.stderr.decode())
        messages = wait_delivered("erin")
        self.assertEqual(len(messages), 1)
        m = messages[0]
        self.assertTrue(m.startswith("Received: from mx.a.test (mx.a.test [127.0.0.2])"), m)
        self.assertIn("with AMTP", m)
        self.assertIn("mpc=per/individual", m)
        self.assertIn("x-amtp=pass", m)
        self.assertIn("\r\nMPC: per/individual\r\nSubject: hello\r\n\r\nHi Erin.\r\n.leading dot\r\n", m)

    def test_private_listener_delivers_without_a_ptr(self):
        s = WORLD.session(cert="private", source="127.0.0.5", private=True)
        self.addCleanup(s.close)
        self.assertReply(s.cmd("EHLO host1.customers.isp.test"), "250-mx.b.test")
        self.assertReply(s.cmd("MAIL FROM:<cust@isp.test>"), "250")
        self.assertReply(s.cmd("RCPT TO:<fred@b.test>"), "250")
        self.assertReply(s.cmd("DATA"), "354")
        self.assertReply(s.cmd("AMTP-MPC: per/individual\r\nSubject: p\r\n\r\nx\r\n."), "250 2.0.0")
        m = wait_delivered("fred")
        self.assertEqual(len(m), 1)
        self.assertIn("MPC: per/individual", m[0])


class Sequence(Base):
    def test_mail_after_a_refused_ehlo_is_refused(self):
        s = WORLD.session(source="127.0.0.4")
        self.addCleanup(s.close)
        self.assertReply(s.cmd("EHLO mx.a.test"), "504 5.7.1")
        self.assertReply(s.cmd("MAIL FROM:<alice@a.test>"), "503")


class Logging(Base):
    def test_each_decision_is_one_log_line_with_its_reason(self):
        self.send("AMTP-MPC: per/bulk\r\nSubject: bad\r\n\r\nx\r\n", rcpts=("gus@b.test",))
        time.sleep(0.3)
        log = WORLD.frontend_log()
        lines = [l for l in log.splitlines() if "amtp event=message" in l and "reason=mpc_undefined" in l]
        self.assertEqual(len(lines), 1, log[-2000:])
        self.assertIn("recipients=gus@b.test", lines[0])
        self.assertRegex(lines[0], r" size=[1-9][0-9]* ")
        self.assertIn("amtp event=ehlo", log)


class Generator(unittest.TestCase):
    def run_generator(self, config):
        return subprocess.run([os.path.join(WORLD.bin, "amtp-exim-config"), "--config", config, "--module",
                               os.path.join(WORLD.build_dir, "lib", "amtp_exim.so"), "--acl",
                               os.path.join(amtp_world.ROOT, "plugins", "exim", "amtp-acl.conf"), "--work",
                               os.path.join(WORLD.dir, "gen")], capture_output=True, text=True)

    def test_generated_configuration_names_the_listeners_and_the_acls(self):
        r = self.run_generator(WORLD.config)
        self.assertEqual(r.returncode, EX_OK, r.stderr)
        self.assertIn("tls_on_connect_ports = %d : %d" % (WORLD.public_port, WORLD.private_port), r.stdout)
        self.assertIn("tls_try_verify_hosts = *", r.stdout)
        self.assertIn("acl_smtp_data = amtp_acl_data", r.stdout)
        self.assertIn("domainlist local_domains = b.test", r.stdout)

    def test_a_bad_configuration_is_reported_with_78(self):
        bad = WORLD.write("bad-exim.ini", "hostname = mx.b.test\n[limits]\nmax-recipients = many\n")
        r = self.run_generator(bad)
        self.assertEqual(r.returncode, EX_CONFIG, r.stderr)
        self.assertIn("bad-exim.ini:3", r.stderr)


class EximAsClient(unittest.TestCase):
    """Exim as the sending side: SRV route, implicit TLS with the site certificate, the
    MPC by the header carrier. The receiving AMTP server is the world's Exim, or a.test's
    own amtpd, which takes the header carrier too (listen.header-carrier)."""

    POLICY = '<amtp-policy><sender address="alice@a.test" mpc="per/individual"/></amtp-policy>\n'

    def test_exim_delivers_by_srv_and_the_header_carrier(self):
        exim = EximClient(WORLD, "a-exim", self.POLICY)
        r = exim.send("alice@a.test", ["hank@b.test"], b"Subject: from exim\n\nHello Hank.\n")
        log = exim.log()
        self.assertEqual(r.returncode, 0, r.stderr.decode() + log)
        messages = wait_delivered("hank")
        self.assertEqual(len(messages), 1, log)
        m = messages[0]
        self.assertIn("with AMTP", m)
        self.assertIn("\r\nMPC: per/individual\r\n", m)
        self.assertNotIn("AMTP-MPC", m)
        self.assertIn("amtp event=server-cert", log)
        self.assertIn("result=pass", log)

    def test_exim_delivers_to_amtpd_by_the_header_carrier(self):
        if not hasattr(WORLD, "maildir_a"):
            WORLD.start_peer_a()
        exim = EximClient(WORLD, "a-exim3", self.POLICY)
        r = exim.send("alice@a.test", ["ivy@a.test"], b"Subject: exim to amtpd\n\nHello Ivy.\n")
        log = exim.log()
        self.assertEqual(r.returncode, 0, r.stderr.decode() + log)
        messages = WORLD.wait_delivered("ivy", 1, domain="a.test", root=WORLD.maildir_a)
        self.assertEqual(len(messages), 1, log + WORLD.peer_log())
        m = messages[0]
        self.assertIn("with AMTP", m)
        self.assertIn("\r\nMPC: per/individual\r\n", m)
        self.assertNotIn("AMTP-MPC", m)
        self.assertIn("Hello Ivy.", m)

    def test_a_domain_without_srv_record_bounces_without_fallback(self):
        exim = EximClient(WORLD, "a-exim2", self.POLICY)
        exim.send("alice@a.test", ["carl@c.test"], b"Subject: x\n\nx\n")
        log = exim.log()
        self.assertIn("reason=srv_missing", log)
        self.assertIn("** carl@c.test", log)


class AmtpdToExim(Base):
    def test_amtpd_relays_to_exim_by_the_header_carrier(self):
        """amtpd (a.test) takes a private submission and relays it to Exim (b.test): its
        MAIL with MPC= gets Exim's 501, so it falls back to the AMTP-MPC carrier (B5)."""
        w = WORLD
        port = amtp_world.free_port()
        config = w.write("a-relay.ini", """hostname = mx.a.test
[listen]
private = 127.0.0.2:%d
[tls]
certificate = %s
key = %s
trusted-ca = %s
private-ca = %s
%s[delivery]
local-domain = a.test
maildir-root = %s
[client]
source = 127.0.0.2
[queue]
directory = %s
retry-schedule = 1h
""" % (port, w.p("client.chain.pem"), w.p("client.key"), w.p("public-root.pem"), w.p("private-root.pem"),
            w.dns_section(), os.path.join(w.dir, "mail-a-relay"), os.path.join(w.dir, "queue-a-relay")))
        os.makedirs(os.path.join(w.dir, "mail-a-relay"), exist_ok=True)
        log = open(os.path.join(w.dir, "amtpd-a-relay.log"), "w")
        w.logs.append(log)
        proc = subprocess.Popen([os.path.join(w.bin, "amtpd"), "-c", config], stdout=log, stderr=subprocess.STDOUT)
        w.procs.append(proc)
        amtp_world.wait_for_port("127.0.0.2", port, proc)
        s = w.session(cert="private", source="127.0.0.5", port=port, host="127.0.0.2")
        self.addCleanup(s.close)
        self.assertReply(s.cmd("EHLO host1.customers.isp.test"), "250")
        self.assertReply(s.cmd("MAIL FROM:<cust@a.test> MPC=per/individual"), "250")
        self.assertReply(s.cmd("RCPT TO:<ivy@b.test>"), "250")
        self.assertReply(s.cmd("DATA"), "354")
        self.assertReply(s.cmd("Subject: via amtpd\r\n\r\nrelayed\r\n."), "250 2.0.0")
        s.cmd("QUIT")
        messages = wait_delivered("ivy", seconds=30)
        self.assertEqual(len(messages), 1, read(os.path.join(w.dir, "amtpd-a-relay.log")))
        self.assertTrue(messages[0].startswith("Received: from mx.a.test (mx.a.test [127.0.0.2])"), messages[0])
        self.assertIn("\r\nMPC: per/individual\r\n", messages[0])
        self.assertNotIn("AMTP-MPC", messages[0])


class StartTls(unittest.TestCase):
    """listen.starttls = true: plaintext first, the EHLO after STARTTLS is the one checked."""

    @classmethod
    def setUpClass(cls):
        cls.world = open_world(listen_extra="starttls = true\n")

    @classmethod
    def tearDownClass(cls):
        close_world(cls.world)

    def test_only_the_ehlo_after_starttls_is_checked_and_mail_needs_tls(self):
        w = self.world
        raw = socket.create_connection(("127.0.0.3", w.public_port), timeout=20, source_address=("127.0.0.2", 0))
        self.addCleanup(raw.close)
        f = raw.makefile("rb")

        def cmd(sock, reader, text):
            if text is not None:
                sock.sendall(text.encode() + b"\r\n")
            lines = []
            while True:
                line = reader.readline().decode().rstrip("\r\n")
                lines.append(line)
                if len(line) < 4 or line[3] != "-":
                    return "\n".join(lines)

        self.assertTrue(cmd(raw, f, None).startswith("220 mx.b.test"))
        reply = cmd(raw, f, "EHLO mx.a.test")
        self.assertTrue(reply.startswith("250"), reply)
        self.assertIn("STARTTLS", reply)
        self.assertTrue(cmd(raw, f, "MAIL FROM:<alice@a.test>").startswith("530 5.7.0"))
        self.assertTrue(cmd(raw, f, "STARTTLS").startswith("220"))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(w.p("public-root.pem"))
        ctx.load_cert_chain(w.p("client.chain.pem"), w.p("client.key"))
        tls = ctx.wrap_socket(raw, server_hostname="mx.b.test")
        self.addCleanup(tls.close)
        g = tls.makefile("rb")
        self.assertTrue(cmd(tls, g, "EHLO other.a.test").startswith(
            "504 5.7.1 Authentication failed: EHLO name not in client certificate"))
        self.assertTrue(cmd(tls, g, "EHLO mx.a.test").startswith("250-mx.b.test"))
        self.assertTrue(cmd(tls, g, "MAIL FROM:<alice@a.test>").startswith("250 2.1.0"))


class Stop(unittest.TestCase):
    # Last by name: it stops the front-end the other tests use.
    def test_zz_sigterm_stops_exim_and_leaves_no_process(self):
        pid = WORLD.frontend_proc.pid
        WORLD.kill_frontend(signal.SIGTERM)
        deadline = time.time() + 10
        while True:  # reception processes finish their own SIGTERM a moment after the daemon
            left = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
            if not left or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(left, [])


if __name__ == "__main__":
    main()
