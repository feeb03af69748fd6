"""Interop between front-ends: a.test's own amtpd relays to the front-end under test
(b.test), and a front-end with an outgoing side relays to amtpd.

Run: python3 tests/integration/test_interop.py --frontend haraka --build build
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amtp_world  # noqa: E402
from amtp_world import close_world, main, open_world  # noqa: E402

WORLD = None
# Front-ends that send AMTP mail on themselves (Exim's client side is tested with its
# own configuration in test_exim.py; OpenSMTPD has no outgoing AMTP side).
OUTGOING = {"standalone", "haraka"}


def setUpModule():
    global WORLD
    WORLD = open_world(start_peer=True)


def tearDownModule():
    close_world(WORLD)


def submit(port, host, sender, rcpt, mpc, body):
    s = WORLD.session(cert="private", source="127.0.0.5", private=True, host=host, port=port)
    try:
        assert s.cmd("EHLO host1.customers.isp.test").startswith("250"), "EHLO refused"
        assert s.cmd("MAIL FROM:<%s> MPC=%s" % (sender, mpc)).startswith("250"), "MAIL refused"
        reply = s.cmd("RCPT TO:<%s>" % rcpt)
        assert reply.startswith("250"), reply
        assert s.cmd("DATA").startswith("354")
        return s.cmd(body + "\r\n.")
    finally:
        s.close()


class Interop(unittest.TestCase):
    def test_amtpd_delivers_to_the_front_end(self):
        reply = submit(WORLD.peer_private_port, "127.0.0.2", "cust@a.test", "zed@b.test", "per/individual",
                       "Subject: from amtpd\r\n\r\nrelayed by a.test")
        self.assertTrue(reply.startswith("250"), reply)
        messages = WORLD.wait_delivered("zed", 1, seconds=30)
        self.assertEqual(len(messages), 1, WORLD.peer_log() + WORLD.frontend_log())
        m = messages[0]
        self.assertTrue(m.startswith("Received: from mx.a.test"), m)
        self.assertIn("\r\nMPC: per/individual\r\n", m)
        self.assertEqual(m.count("\r\nMPC:"), 1)
        self.assertIn("relayed by a.test", m)

    def test_the_front_end_delivers_to_amtpd(self):
        if amtp_world.ARGS.frontend not in OUTGOING:
            # Not a skip of a check: this front-end has no outgoing AMTP side to test.
            self.assertIn(amtp_world.ARGS.frontend, ("exim", "opensmtpd"))
            return
        reply = submit(WORLD.private_port, "127.0.0.3", "cust@b.test", "yan@a.test", "per/individual",
                       "Subject: to amtpd\r\n\r\nrelayed by b.test")
        self.assertTrue(reply.startswith("250"), reply)
        deadline = time.time() + 30
        messages = []
        while not messages and time.time() < deadline:
            messages = WORLD.delivered("yan", "a.test", WORLD.maildir_a)
            time.sleep(0.1)
        self.assertEqual(len(messages), 1, WORLD.frontend_log() + WORLD.peer_log())
        m = messages[0]
        self.assertTrue(m.startswith("Received: from mx.b.test"), m)
        self.assertIn("\r\nMPC: per/individual\r\n", m)
        self.assertIn("relayed by b.test", m)


if __name__ == "__main__":
    main()
