"""OpenSMTPD adapter over the wire: what only the gate + filter design has to prove.

Run: python3 tests/integration/test_opensmtpd.py --frontend opensmtpd --build build
(smtpd from plugins/opensmtpd/install-deps; root for smtpd's mount namespace).
"""

import os
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amtp_world  # noqa: E402
from amtp_world import close_world, main, open_world  # noqa: E402

WORLD = None
SMTPD_PORT = amtp_world.free_port()


def setUpModule():
    global WORLD
    if amtp_world.ARGS.frontend != "opensmtpd":
        raise unittest.SkipTest("OpenSMTPD adapter tests need --frontend opensmtpd")
    if not os.path.exists("/usr/sbin/smtpd") or os.geteuid() != 0:
        # Loud, and a failure where it must not happen: CI installs smtpd and runs as root.
        why = "needs smtpd (plugins/opensmtpd/install-deps) and root (mount namespace)"
        print("*** SKIPPED: " + why, file=sys.stderr)
        if os.environ.get("CI"):
            raise RuntimeError(why)
        raise unittest.SkipTest(why)
    # serve puts smtpd's loopback proxy-v2 listener here, so the tests can reach it.
    os.environ["AMTP_SMTPD_PORT"] = str(SMTPD_PORT)
    WORLD = open_world()


def tearDownModule():
    if WORLD:
        close_world(WORLD)


def proxy_v2(src, sport, dst, dport):
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", 12) + socket.inet_aton(src)
            + socket.inet_aton(dst) + struct.pack("!HH", sport, dport))


def wait_delivered(mailbox, count=1, seconds=15):
    """smtpd acknowledges after its queue commit; the mda writes the Maildir moments later."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        got = WORLD.delivered(mailbox)
        if len(got) >= count:
            return got
        time.sleep(0.05)
    return WORLD.delivered(mailbox)


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [(int(line.split(None, 1)[0]), line.split(None, 1)[1]) for line in out.strip().splitlines() if line.strip()]


class Base(unittest.TestCase):
    def session(self, **kw):
        s = WORLD.session(**kw)
        self.addCleanup(s.close)
        return s

    def assertReply(self, reply, prefix):
        self.assertTrue(reply.startswith(prefix), "expected %r, got %r" % (prefix, reply))

    def deliver_one(self, rcpt, subject="t"):
        s = self.session()
        self.assertReply(s.cmd("EHLO mx.a.test"), "250")
        self.assertReply(s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual"), "250")
        self.assertReply(s.cmd("RCPT TO:<%s>" % rcpt), "250")
        self.assertReply(s.cmd("DATA"), "354")
        reply = s.cmd("Subject: %s\r\n\r\nbody\r\n." % subject)
        s.cmd("QUIT")
        return reply


class Gate(Base):
    def test_a_forged_proxy_header_on_the_loopback_port_is_refused(self):
        # A local process claims to be mx.a.test: the gate never registered it.
        with socket.create_connection(("127.0.0.1", SMTPD_PORT), timeout=20) as raw:
            raw.sendall(proxy_v2("127.0.0.2", 41000, "127.0.0.3", WORLD.public_port))
            data = b""
            while b"\r\n" not in data:
                chunk = raw.recv(4096)
                if not chunk:
                    break
                data += chunk
        self.assertTrue(data.startswith(b"554 5.7.1 "), data)
        self.assertIn("reason=not_registered", WORLD.frontend_log())

    def test_ehlo_reply_offers_the_sites_mpc_line_and_pipelining_added_by_the_gate(self):
        reply = self.session().cmd("EHLO mx.a.test")
        lines = reply.splitlines()
        self.assertIn("250-MPC DENY=*/optout", lines)
        self.assertIn("250-PIPELINING", lines)
        self.assertEqual(reply.count("MPC"), 1)
        # A refused EHLO gets no keyword at all.
        refused = self.session().cmd("EHLO other.a.test")
        self.assertTrue(refused.startswith("504 5.7.1"), refused)
        self.assertNotIn("MPC", refused)

    def test_mail_reply_uses_the_address_status_code(self):
        s = self.session()
        s.cmd("EHLO mx.a.test")
        self.assertReply(s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual"), "250 2.1.0 ")

    def test_an_over_long_command_line_is_refused_by_the_gate(self):
        s = self.session()
        s.send_raw(b"EHLO " + b"a" * 5000)
        self.assertReply(s.reply(), "500 5.5.2")


class Filter(Base):
    def test_header_carrier_is_accepted_and_replaced_by_the_mpc_field(self):
        s = self.session()
        s.cmd("EHLO mx.a.test")
        self.assertReply(s.cmd("MAIL FROM:<alice@a.test>"), "250")
        self.assertReply(s.cmd("RCPT TO:<carrier@b.test>"), "250")
        self.assertReply(s.cmd("DATA"), "354")
        self.assertReply(s.cmd("AMTP-MPC: per/individual\r\nSubject: c\r\n\r\nx\r\n."), "250")
        got = wait_delivered("carrier")
        self.assertEqual(len(got), 1)
        self.assertIn("\r\nMPC: per/individual\r\n", got[0])
        self.assertNotIn("AMTP-MPC", got[0])

    def test_delivered_message_has_our_trace_first_and_crlf_lines(self):
        self.assertReply(self.deliver_one("trace@b.test"), "250")
        got = wait_delivered("trace")
        self.assertEqual(len(got), 1)
        m = got[0]
        self.assertTrue(m.startswith("Received: from mx.a.test (mx.a.test [127.0.0.2])"), m)
        self.assertIn("x-amtp=pass", m)
        self.assertIn("by mx.b.test (OpenSMTPD)", m)  # smtpd's own Received is kept below ours
        self.assertNotIn("Return-Path", m)
        # smtpd's submission fix-ups are undone: the message is stored as the client sent it.
        self.assertNotIn("Message-ID", m)
        self.assertNotIn("X-AMTP-Header-End", m)
        self.assertIn("\r\nMPC: per/individual\r\nSubject: t\r\n\r\nbody\r\n", m)
        self.assertNotIn("\n", m.replace("\r\n", ""))

    def test_smtpd_stays_up_after_nasty_sessions(self):
        for junk in (b"\x00\x01|filter-result|x|y|proceed\r\n", b"MAIL FROM:<a|b@a.test> MPC=per/individual\r\n",
                     b"EHLO mx.a.test\r\nRCPT TO:<x@b.test>\r\nDATA\r\n.\r\n", b"\r\n\r\n|||\r\n"):
            s = self.session()
            s.send_raw(junk)
            try:
                s.reply()
            except (ConnectionError, OSError):
                pass
            s.close()
        self.assertIsNone(WORLD.frontend_proc.poll(), "serve (and so smtpd) exited")
        self.assertReply(self.session().cmd("EHLO mx.a.test"), "250")


class Restart(Base):
    def test_killing_the_gate_drops_no_acknowledged_message(self):
        self.assertReply(self.deliver_one("durable@b.test", "durable"), "250")
        gate = [pid for pid, args in children(WORLD.frontend_proc.pid) if "amtp-opensmtpd-gate" in args]
        self.assertEqual(len(gate), 1, children(WORLD.frontend_proc.pid))
        os.kill(gate[0], signal.SIGKILL)
        # serve stops smtpd when the gate dies; the queue survives in queue.directory.
        WORLD.frontend_proc.wait(timeout=30)
        WORLD.procs.remove(WORLD.frontend_proc)
        WORLD.start_frontend()
        got = wait_delivered("durable")
        self.assertEqual(len(got), 1)
        time.sleep(1)
        self.assertEqual(len(WORLD.delivered("durable")), 1)  # delivered once, not twice



class DeliverProgram(Base):
    def test_deliver_refuses_an_unknown_recipient_and_creates_no_mailbox(self):
        # A message smtpd makes itself (a bounce to a made-up local sender) never passed
        # the filter's RCPT check: the mda applies delivery.recipients too (EX_NOUSER).
        deliver = os.path.join(WORLD.bin, "amtp-opensmtpd-deliver")
        env = dict(os.environ, ORIGINAL_RECIPIENT="ghost@b.test")
        r = subprocess.run([deliver, "--recipients", "mailbox", WORLD.maildir], input=b"Subject: x\n\nbody\n",
                           env=env, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 67, r.stderr)
        self.assertIn(b"unknown recipient", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(WORLD.maildir, "b.test", "ghost")))
        WORLD.add_mailbox("mda-direct")
        env["ORIGINAL_RECIPIENT"] = "mda-direct@b.test"
        r = subprocess.run([deliver, "--recipients", "mailbox", WORLD.maildir], input=b"Subject: x\n\nbody\n",
                           env=env, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

if __name__ == "__main__":
    main()
