"""Interop: Exim, as an AMTP client with our module (SRV route, implicit TLS with the
site certificate, the MPC by the AMTP-MPC header carrier), delivers to the front-end
under test (b.test). Registered for every front-end other than Exim itself (whose own
suite has Exim to Exim), in the non-sanitized build (Exim cannot load an ASan module).

Run: python3 tests/integration/test_from_exim.py --frontend haraka --build build
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amtp_world import close_world, main, open_world  # noqa: E402
from exim_client import EximClient  # noqa: E402

WORLD = None


def setUpModule():
    global WORLD
    WORLD = open_world()


def tearDownModule():
    close_world(WORLD)


class FromExim(unittest.TestCase):
    def test_exim_delivers_to_the_front_end_by_the_header_carrier(self):
        exim = EximClient(WORLD, "a-exim", '<amtp-policy><sender address="alice@a.test" '
                                           'mpc="per/individual"/></amtp-policy>\n')
        r = exim.send("alice@a.test", ["quinn@b.test"], b"Subject: from exim\n\nHello Quinn.\n")
        self.assertEqual(r.returncode, 0, r.stderr.decode() + exim.log())
        messages = WORLD.wait_delivered("quinn", 1, seconds=30)
        self.assertEqual(len(messages), 1, exim.log() + WORLD.frontend_log())
        m = messages[0]
        self.assertTrue(m.startswith("Received: from mx.a.test"), m)
        self.assertIn("with AMTP", m)
        self.assertIn("\r\nMPC: per/individual\r\n", m)
        self.assertEqual(m.count("\r\nMPC:"), 1)
        self.assertNotIn("AMTP-MPC", m)
        self.assertIn("Hello Quinn.", m)
        log = exim.log()
        self.assertIn("amtp event=server-cert", log)
        self.assertIn("=> quinn@b.test", log)

    def test_a_denied_mpc_bounces_in_exim_and_nothing_is_delivered(self):
        # nocom@b.test refuses com/* in the world's policy: the refusal after DATA
        # (header carrier) is permanent, so Exim fails the address instead of retrying.
        exim = EximClient(WORLD, "a-exim-com", '<amtp-policy><sender address="ads@a.test" '
                                               'mpc="com/optin"/></amtp-policy>\n')
        exim.send("ads@a.test", ["nocom@b.test"], b"Subject: offer\n\nBuy.\n")
        log = exim.log()
        self.assertIn("** nocom@b.test", log)
        self.assertEqual(WORLD.delivered("nocom"), [])


if __name__ == "__main__":
    main()
