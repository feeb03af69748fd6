"""Over-the-wire rules that concern the Haraka front-end in particular (the shared ones
are in test_wire.py).

Run: python3 tests/integration/test_haraka.py --frontend haraka --build build
Each test names the rule it proves.
"""

import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amtp_world  # noqa: E402
from amtp_world import close_world, main, open_world, session_kib, session_pids  # noqa: E402

WORLD = None


def setUpModule():
    global WORLD
    if amtp_world.ARGS.frontend != "haraka":
        raise unittest.SkipTest("Haraka-specific tests (use --frontend haraka)")
    WORLD = open_world()


def tearDownModule():
    if WORLD:
        close_world(WORLD)


class Base(unittest.TestCase):
    def authenticated(self, **kw):
        s = WORLD.session(**kw)
        self.addCleanup(s.close)
        reply = s.cmd("EHLO " + kw.pop("ehlo", "mx.a.test"))
        self.assertTrue(reply.startswith("250"), reply)
        return s

    def assertReply(self, reply, prefix):
        self.assertTrue(reply.startswith(prefix), "expected %r, got %r" % (prefix, reply))


class Listeners(Base):
    def test_private_listener_has_implicit_tls_too(self):
        # Haraka gives implicit TLS to one smtps_port; the plugin extends it to every
        # AMTP listener. A plaintext client gets no greeting in clear.
        with socket.create_connection(("127.0.0.3", WORLD.private_port), timeout=5,
                                      source_address=("127.0.0.2", 0)) as raw:
            raw.settimeout(2)
            try:
                data = raw.recv(100)
            except socket.timeout:
                data = b""
            self.assertFalse(data.startswith(b"220"), data)

    def test_mail_before_ehlo_is_refused(self):
        s = WORLD.session()
        self.addCleanup(s.close)
        self.assertReply(s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual"), "503 ")

    def test_refused_ehlo_leaves_the_session_unauthenticated(self):
        s = WORLD.session(source="127.0.0.4")
        self.addCleanup(s.close)
        self.assertReply(s.cmd("EHLO mx.a.test"), "504 5.7.1 ")
        self.assertReply(s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual"), "503 ")


class Envelope(Base):
    def test_unknown_mail_parameter_is_refused_with_555_5_5_4_as_amtpd(self):
        s = self.authenticated()
        self.assertReply(s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual XFOO=1"), "555 5.5.4 ")

    def test_duplicate_mpc_parameter_is_refused_with_501_5_5_4(self):
        s = self.authenticated()
        self.assertReply(s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual MPC=com/optin"), "501 5.5.4 ")

    def test_mpc_individual_passes_even_a_recipient_rule(self):
        s = self.authenticated()
        self.assertReply(s.cmd("MAIL FROM:<admin@a.test> MPC=mpc/individual"), "250 2.1.0")
        self.assertReply(s.cmd("RCPT TO:<nocom@b.test>"), "250 2.1.5")


class Data(Base):
    def transaction(self, rcpts, data, mpc="per/individual"):
        s = self.authenticated()
        self.assertReply(s.cmd("MAIL FROM:<alice@a.test> MPC=%s" % mpc), "250 2.1.0")
        for r in rcpts:
            self.assertReply(s.cmd("RCPT TO:<%s>" % r), "250 2.1.5")
        self.assertReply(s.cmd("DATA"), "354")
        return s.cmd(data + "\r\n.")

    def test_each_local_recipient_gets_its_own_durable_copy(self):
        reply = self.transaction(["multi1@b.test", "multi2@b.test"], "Subject: two\r\n\r\nfor both\r\n")
        self.assertReply(reply, "250 2.0.0")
        for box in ("multi1", "multi2"):
            m = WORLD.delivered(box)
            self.assertEqual(len(m), 1, box)
            self.assertIn("\r\nMPC: per/individual\r\nSubject: two\r\n\r\nfor both\r\n", m[0])
            # The TLS version and cipher of the session (read from the socket at connect).
            self.assertRegex(m[0], r"\(TLSv1\.[23] [A-Z0-9_-]+; verified;")
            self.assertNotIn("for <", m[0].split("\r\nAuthentication-Results:")[0])

    def test_matching_amtp_mpc_carrier_is_removed_before_delivery(self):
        reply = self.transaction(["carrier@b.test"], "AMTP-MPC: per/individual\r\nSubject: c\r\n\r\nx\r\n")
        self.assertReply(reply, "250 2.0.0")
        m = WORLD.delivered("carrier")
        self.assertEqual(len(m), 1)
        self.assertNotIn("AMTP-MPC", m[0])
        self.assertIn("MPC: per/individual\r\nSubject: c\r\n", m[0])

    def test_carrier_disagreeing_with_the_parameter_is_refused_with_550_5_7_1(self):
        reply = self.transaction(["conflict@b.test"], "AMTP-MPC: com/optin\r\nSubject: c\r\n\r\nx\r\n")
        self.assertReply(reply, "550 5.7.1 ")
        self.assertEqual(WORLD.delivered("conflict"), [])

    def test_carrier_without_parameter_meets_the_recipient_rule_at_end_of_data(self):
        s = self.authenticated()
        self.assertReply(s.cmd("MAIL FROM:<shop@a.test>"), "250 2.1.0")
        self.assertReply(s.cmd("RCPT TO:<nocom@b.test>"), "250 2.1.5")
        self.assertReply(s.cmd("DATA"), "354")
        self.assertReply(s.cmd("AMTP-MPC: com/optin\r\nSubject: c\r\n\r\nx\r\n."), "550 5.7.1 MPC policy violation")
        self.assertEqual(WORLD.delivered("nocom"), [])

    def test_no_mpc_at_all_is_refused_at_end_of_data_with_555_5_5_4(self):
        s = self.authenticated()
        self.assertReply(s.cmd("MAIL FROM:<alice@a.test>"), "250 2.1.0")
        self.assertReply(s.cmd("RCPT TO:<nompc@b.test>"), "250 2.1.5")
        self.assertReply(s.cmd("DATA"), "354")
        self.assertReply(s.cmd("Subject: c\r\n\r\nx\r\n."), "555 5.5.4 ")
        self.assertEqual(WORLD.delivered("nompc"), [])

    def test_only_the_forged_authentication_results_field_is_removed(self):
        # The session names the header entries the core's scanner removes, so Haraka
        # takes out the forged field alone and keeps another site's.
        reply = self.transaction(["forged@b.test"],
                                 "Authentication-Results: mx.b.test; x-amtp=pass\r\n"
                                 "Authentication-Results: mx.a.test; spf=pass\r\n"
                                 "Subject: f\r\n\r\nx\r\n")
        self.assertReply(reply, "250 2.0.0")
        m = WORLD.delivered("forged")[-1]
        self.assertIn("\r\nAuthentication-Results: mx.a.test; spf=pass\r\n", m)
        self.assertEqual(m.count("Authentication-Results: mx.b.test;"), 1)

    def test_a_line_over_998_characters_is_refused_with_554_5_6_0_as_amtpd(self):
        # Haraka wraps such a line and flags it; the rulebook refuses the message.
        self.assertReply(self.transaction(["x@b.test"], "Subject: 998\r\n\r\n" + "y" * 998 + "\r\n"), "250 2.0.0")
        reply = self.transaction(["x@b.test"], "Subject: 999\r\n\r\n" + "y" * 999 + "\r\n")
        self.assertReply(reply, "554 5.6.0 ")
        self.assertEqual(len(WORLD.delivered("x")), 1)
        self.assertIn("reason=data_line_too_long", WORLD.frontend_log())

    def test_storage_failure_is_a_temporary_451_not_an_acceptance(self):
        # The mailbox exists, but its tmp/ is taken by a plain file: the core cannot write.
        os.makedirs(os.path.join(WORLD.maildir, "b.test", "blocked"), exist_ok=True)
        with open(os.path.join(WORLD.maildir, "b.test", "blocked", "tmp"), "w") as f:
            f.write("not a maildir")
        reply = self.transaction(["blocked@b.test"], "Subject: b\r\n\r\nx\r\n")
        self.assertReply(reply, "451 4.3.0 ")
        self.assertIn("reason=storage_temporary", WORLD.frontend_log())


class StartTls(unittest.TestCase):
    """listen.starttls: Haraka's STARTTLS never verifies a client certificate (Haraka
    issue 3451), so the plugin verifies the chain itself after the handshake."""

    @classmethod
    def setUpClass(cls):
        cls.world = open_world(listen_extra="starttls = true\n")

    @classmethod
    def tearDownClass(cls):
        close_world(cls.world)

    def starttls_session(self, cert):
        import ssl
        w = self.world
        raw = socket.create_connection(("127.0.0.3", w.public_port), timeout=20, source_address=("127.0.0.2", 0))
        self.addCleanup(raw.close)
        f = raw.makefile("rb")

        def reply():
            lines = []
            while True:
                line = f.readline().decode().rstrip("\r\n")
                lines.append(line)
                if len(line) < 4 or line[3] != "-":
                    return "\n".join(lines)

        self.assertTrue(reply().startswith("220"))
        raw.sendall(b"EHLO mx.a.test\r\n")
        self.assertIn("STARTTLS", reply())
        raw.sendall(b"STARTTLS\r\n")
        self.assertTrue(reply().startswith("220"))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(w.p("public-root.pem"))
        ctx.load_cert_chain(w.p(cert + ".chain.pem"), w.p(cert + ".key"))
        tls = ctx.wrap_socket(raw, server_hostname="mx.b.test")
        self.addCleanup(tls.close)
        session = amtp_world.WireSession.__new__(amtp_world.WireSession)
        session.sock, session.buf = tls, b""
        return session

    def test_mail_before_starttls_is_refused(self):
        w = self.world
        with socket.create_connection(("127.0.0.3", w.public_port), timeout=20,
                                      source_address=("127.0.0.2", 0)) as raw:
            f = raw.makefile("rb")
            self.assertTrue(f.readline().startswith(b"220"))
            raw.sendall(b"EHLO mx.a.test\r\n")
            while not f.readline().startswith(b"250 "):
                pass
            raw.sendall(b"MAIL FROM:<alice@a.test> MPC=per/individual\r\n")
            self.assertTrue(f.readline().startswith(b"530 5.7.0 "))

    def test_verified_certificate_after_starttls_is_accepted(self):
        s = self.starttls_session("client")
        reply = s.cmd("EHLO mx.a.test")
        self.assertTrue(reply.startswith("250-mx.b.test"), reply)
        self.assertIn("MPC DENY=*/optout", reply)

    def test_foreign_ca_certificate_after_starttls_is_refused_by_the_plugin(self):
        s = self.starttls_session("other-ca")
        self.assertEqual(s.cmd("EHLO mx.a.test"),
                         "504 5.7.1 Authentication failed: certificate not issued by a trusted CA")


class Backpressure(Base):
    # Bound on the growth of the Haraka tree during the flood; without the plugin's
    # bound on outstanding bytes Haraka grows by hundreds of MiB in these seconds.
    FLOOD_SECONDS = 12
    GROWTH_LIMIT_KIB = 64 * 1024

    def test_noop_flood_bounded_memory(self):
        import ssl
        sid = WORLD.frontend_proc.pid
        # Warm up (TLS, the addon, a delivery) so that the growth measured is the flood's.
        self.good_client_is_served()
        before = sum(session_kib(sid).values())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        peak = before
        closed_by_server = False
        # Several flooders, no certificate, never reading a reply.
        socks = []
        for _ in range(4):
            raw = socket.create_connection(("127.0.0.3", WORLD.public_port), timeout=5,
                                           source_address=("127.0.0.2", 0))
            socks.append(ctx.wrap_socket(raw, server_hostname="mx.b.test"))
        chunk = b"NOOP\r\n" * 8192
        deadline = time.time() + self.FLOOD_SECONDS
        try:
            while time.time() < deadline and socks:
                for s in list(socks):
                    try:
                        s.settimeout(0.2)
                        s.sendall(chunk)
                    except socket.timeout:
                        pass  # the server stopped reading: TCP pushes back, as it should
                    except OSError:
                        closed_by_server = True
                        socks.remove(s)
                peak = max(peak, sum(session_kib(sid).values()))
        finally:
            for s in socks:
                s.close()
        growth = peak - before
        self.assertLess(growth, self.GROWTH_LIMIT_KIB,
                        "Haraka grew by %d KiB during the flood (closed by server: %s)" % (growth, closed_by_server))
        self.assertIn("reason=input_overflow", WORLD.frontend_log())
        self.good_client_is_served()

    def good_client_is_served(self):
        s = self.authenticated()
        self.assertReply(s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual"), "250 2.1.0")
        self.assertReply(s.cmd("RCPT TO:<after-flood@b.test>"), "250 2.1.5")
        self.assertReply(s.cmd("DATA"), "354")
        self.assertReply(s.cmd("Subject: after\r\n\r\nserved\r\n."), "250 2.0.0")


class NotDoubled(Base):
    """Haraka has no queue to carry a failed recipient: when one copy is durable and
    another recipient fails, the plugin takes its Maildir copies back and answers 451,
    so that the client's retry delivers each recipient once."""

    def test_maildir_partial_failure_not_doubled(self):
        zed = os.path.join(WORLD.maildir, "b.test", "zed")
        os.rmdir(os.path.join(zed, "tmp"))
        with open(os.path.join(zed, "tmp"), "w") as f:
            f.write("broken")
        for attempt in range(2):  # the client's retry meets the same fault
            s = self.authenticated()
            self.assertReply(s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual"), "250 2.1.0")
            self.assertReply(s.cmd("RCPT TO:<quinn@b.test>"), "250 2.1.5")
            self.assertReply(s.cmd("RCPT TO:<zed@b.test>"), "250 2.1.5")
            self.assertReply(s.cmd("DATA"), "354")
            self.assertReply(s.cmd("Subject: two\r\n\r\nx\r\n."), "451 4.3.0 ")
            self.assertEqual(WORLD.delivered("quinn"), [], "attempt %d left a copy to be doubled" % attempt)
        os.remove(os.path.join(zed, "tmp"))
        os.makedirs(os.path.join(zed, "tmp"))
        s = self.authenticated()
        self.assertReply(s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual"), "250 2.1.0")
        self.assertReply(s.cmd("RCPT TO:<quinn@b.test>"), "250 2.1.5")
        self.assertReply(s.cmd("RCPT TO:<zed@b.test>"), "250 2.1.5")
        self.assertReply(s.cmd("DATA"), "354")
        self.assertReply(s.cmd("Subject: two\r\n\r\nx\r\n."), "250 2.0.0")
        self.assertEqual(len(WORLD.delivered("quinn")), 1)
        self.assertEqual(len(WORLD.delivered("zed")), 1)


def sidecar_pids(sid):
    """The relay sidecar amtpd started by the plugin, in the front-end's session."""
    out = []
    for pid in session_pids(sid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"/amtpd") and any(b"haraka-relay" in c for c in cmd):
            out.append(pid)
    return out


class RelayFirst(Base):
    """The relay hand-off comes before local delivery (amtpd's order): once the relayed
    recipients are in the sidecar's queue, a local failure cannot be answered 451 (the
    client's retry would send the relayed copy again); it is carried instead."""

    def test_local_failure_after_the_relay_hand_off_is_carried_not_451(self):
        WORLD.add_mailbox("held")
        held = os.path.join(WORLD.maildir, "b.test", "held")
        os.rmdir(os.path.join(held, "tmp"))
        with open(os.path.join(held, "tmp"), "w") as f:
            f.write("broken")
        before = len(WORLD.delivered("cust"))
        s = WORLD.session(cert="private", source="127.0.0.5", private=True)
        self.addCleanup(s.close)
        self.assertReply(s.cmd("EHLO host1.customers.isp.test"), "250")
        self.assertReply(s.cmd("MAIL FROM:<cust@b.test> MPC=per/individual"), "250 2.1.0")
        self.assertReply(s.cmd("RCPT TO:<held@b.test>"), "250 2.1.5")
        self.assertReply(s.cmd("RCPT TO:<far@d.test>"), "250 2.1.5")
        self.assertReply(s.cmd("DATA"), "354")
        self.assertReply(s.cmd("Subject: relayed first\r\n\r\nx\r\n."), "250 2.0.0")
        self.assertIn("carried=held@b.test bounce=queued", WORLD.frontend_log())
        # The sender hears of the failed recipient (the sidecar delivers the bounce to
        # its local mailbox), and the relayed copy went once.
        bounces = WORLD.wait_delivered("cust", before + 1)[before:]
        self.assertEqual(len(bounces), 1, WORLD.frontend_log())
        self.assertIn("Final-Recipient: rfc822; held@b.test", bounces[0])
        self.assertNotIn("far@d.test", bounces[0].split("Final-Recipient")[1])


class ZRelayDown(Base):
    """Runs after the others: stops, then kills the relay sidecar."""

    def private_transaction(self):
        s = WORLD.session(cert="private", source="127.0.0.5", private=True)
        self.addCleanup(s.close)
        self.assertReply(s.cmd("EHLO host1.customers.isp.test"), "250")
        self.assertReply(s.cmd("MAIL FROM:<cust@b.test> MPC=per/individual"), "250 2.1.0")
        self.assertReply(s.cmd("RCPT TO:<gus@b.test>"), "250 2.1.5")
        self.assertReply(s.cmd("RCPT TO:<far@d.test>"), "250 2.1.5")
        self.assertReply(s.cmd("DATA"), "354")
        return s

    def test_relay_failure_is_451_with_nothing_stored_locally(self):
        pids = sidecar_pids(WORLD.frontend_proc.pid)
        self.assertTrue(pids, "no relay sidecar")
        # A sidecar that does not answer: the hand-off waits in its TLS handshake. The
        # local copy must not exist meanwhile (storing it first and taking it back on a
        # relay failure leaves a window in which it is delivered, and a copy an LMTP
        # agent took cannot be taken back at all).
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            s = self.private_transaction()
            s.send_raw(b"Subject: both\r\n\r\nx\r\n.\r\n")
            deadline = time.time() + 2
            while time.time() < deadline:
                self.assertEqual(WORLD.delivered("gus"), [], "a local copy was stored before the relay hand-off")
                time.sleep(0.05)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
        self.assertReply(s.reply(), "451 4.3.0 ")
        self.assertEqual(WORLD.delivered("gus"), [])
        self.assertIn("nothing stored", WORLD.frontend_log())
        time.sleep(0.5)
        for attempt in range(2):  # the client's retries meet the same fault
            s = self.private_transaction()
            self.assertReply(s.cmd("Subject: both\r\n\r\nx\r\n."), "451 4.3.0 ")
            self.assertEqual(WORLD.delivered("gus"), [], "attempt %d left a local copy to be doubled" % attempt)


class ZStop(Base):
    """Runs last: stops the server."""

    def test_sigterm_stops_haraka(self):
        started = time.time()
        WORLD.kill_frontend(signal.SIGTERM)
        self.assertLess(time.time() - started, 30)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.3", WORLD.public_port), timeout=2)


if __name__ == "__main__":
    main()
