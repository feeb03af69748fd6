"""The standalone server's outgoing side: mail submitted on a private listener for a
non-local domain is queued durably and relayed by AMTP (SRV, TLS, MPC=), with a
bounce (MPC net/autoresponse) on a permanent refusal or an MPC DENY.

Run: python3 tests/integration/test_relay.py --build build
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amtp_world  # noqa: E402
from amtp_world import close_world, main, open_world  # noqa: E402

WORLD = None


def setUpModule():
    global WORLD
    WORLD = open_world(start_peer=True)


def tearDownModule():
    close_world(WORLD)


def wait_for(predicate, seconds=30.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


class Relay(unittest.TestCase):
    def submit(self, sender, recipient, mpc, body="Subject: relayed\r\n\r\nHello from a customer.\r\n"):
        s = WORLD.session(cert="private", source="127.0.0.5", private=True)
        self.addCleanup(s.close)
        self.assertTrue(s.cmd("EHLO host1.customers.isp.test").startswith("250"))
        self.assertTrue(s.cmd("MAIL FROM:<%s> MPC=%s" % (sender, mpc)).startswith("250"))
        reply = s.cmd("RCPT TO:<%s>" % recipient)
        self.assertTrue(reply.startswith("250"), reply)
        self.assertTrue(s.cmd("DATA").startswith("354"))
        reply = s.cmd(body + ".")
        self.assertTrue(reply.startswith("250 2.0.0"), reply)
        s.cmd("QUIT")

    def test_private_submission_is_relayed_by_amtp_with_the_mpc_parameter(self):
        self.submit("cust1@b.test", "alice@a.test", "per/individual")
        messages = wait_for(lambda: WORLD.delivered("alice", "a.test", WORLD.maildir_a))
        self.assertEqual(len(messages), 1, WORLD.frontend_log())
        m = messages[0]
        # a.test received it from mx.b.test, authenticated, and wrote the MPC field itself.
        self.assertTrue(m.startswith("Received: from mx.b.test (mx.b.test [127.0.0.3])"), m)
        self.assertIn("\r\nMPC: per/individual\r\n", m)
        self.assertEqual(m.count("\r\nMPC:"), 1)
        self.assertIn("Hello from a customer.", m)
        self.assertIn("event=mail", WORLD.peer_log())
        self.assertIn("mpc=per/individual", WORLD.peer_log())

    def test_a_domain_without_amtp_service_bounces_with_net_autoresponse(self):
        self.submit("cust2@b.test", "carl@c.test", "per/individual")
        bounces = wait_for(lambda: WORLD.delivered("cust2"))
        self.assertEqual(len(bounces), 1, WORLD.frontend_log())
        b = bounces[0]
        self.assertTrue(b.startswith("MPC: net/autoresponse\r\n"), b)
        self.assertIn("Undelivered Mail Returned to Sender", b)
        self.assertIn("<carl@c.test>: 550 5.1.2", b)

    def test_a_bounce_to_an_unknown_local_sender_creates_no_mailbox(self):
        # A private client chooses its sender address; the bounce must not become a
        # way to create mailboxes (delivery.recipients).
        if amtp_world.ARGS.frontend != "standalone":
            self.skipTest("amtpd's own bounces")
        self.submit("stranger@b.test", "carl2@c.test", "per/individual")
        self.assertTrue(wait_for(lambda: "is not a known local recipient" in WORLD.frontend_log()),
                        WORLD.frontend_log())
        self.assertFalse(os.path.exists(os.path.join(WORLD.maildir, "b.test", "stranger")))

    def test_an_mpc_deny_at_the_next_hop_bounces_without_sending(self):
        self.submit("cust3@b.test", "alice3@a.test", "com/optin")
        bounces = wait_for(lambda: WORLD.delivered("cust3"))
        self.assertEqual(len(bounces), 1, WORLD.frontend_log())
        self.assertIn("MPC policy violation", bounces[0])
        self.assertEqual(WORLD.delivered("alice3", "a.test", WORLD.maildir_a), [])

    def test_a_temporary_failure_stays_queued_and_is_listed(self):
        self.submit("cust4@b.test", "dan@d.test", "per/individual")
        config = os.path.join(WORLD.dir, "b.ini")

        def listed():
            out = subprocess.run([os.path.join(WORLD.bin, "amtpd"), "-c", config, "--queue", "list"],
                                 capture_output=True, text=True).stdout
            return out if "pending <dan@d.test> 421" in out else None

        out = wait_for(listed)
        self.assertTrue(out, "queue listing never showed the deferred recipient")
        self.assertIn("from=<cust4@b.test> mpc=per/individual attempts=1", out)
        self.assertEqual(WORLD.delivered("cust4"), [])  # deferred, not bounced

    def queue_listing(self):
        config = os.path.join(WORLD.dir, "b.ini")
        return subprocess.run([os.path.join(WORLD.bin, "amtpd"), "-c", config, "--queue", "list"],
                              capture_output=True, text=True).stdout

    def test_a_451_is_retried_and_a_queued_message_survives_kill_9(self):
        # a.test cannot store mail while its Maildir root is away: it answers 451 4.3.0.
        off = WORLD.maildir_a + ".off"
        os.rename(WORLD.maildir_a, off)
        try:
            self.submit("cust5@b.test", "retry@a.test", "per/individual")
            listed = wait_for(lambda: "pending <retry@a.test> 451" in self.queue_listing())
            self.assertTrue(listed, self.queue_listing() + WORLD.frontend_log())
            WORLD.kill_frontend(signal.SIGKILL)
        finally:
            os.rename(off, WORLD.maildir_a)
        WORLD.start_frontend()
        self.assertIn("pending <retry@a.test>", self.queue_listing())
        flush = subprocess.run([os.path.join(WORLD.bin, "amtpd"), "-c", os.path.join(WORLD.dir, "b.ini"),
                                "--queue", "flush"], capture_output=True, text=True)
        self.assertEqual(flush.returncode, 0, flush.stderr)
        self.assertIn("told to re-read the queue", flush.stdout)
        messages = wait_for(lambda: WORLD.delivered("retry", "a.test", WORLD.maildir_a))
        self.assertEqual(len(messages), 1, WORLD.frontend_log())
        self.assertTrue(wait_for(lambda: "retry@a.test" not in self.queue_listing()))
        time.sleep(0.5)
        self.assertEqual(len(WORLD.delivered("retry", "a.test", WORLD.maildir_a)), 1)  # exactly once

    def test_maildir_partial_failure_not_doubled(self):
        if amtp_world.ARGS.frontend != "standalone":
            self.skipTest("amtpd carries failed recipients in its queue; Haraka takes copies back (test_haraka)")
        # fred's Maildir is writable, hank's is broken (its tmp/ is a plain file): the
        # write fails after fred's copy is durable. The client must hear 250 (a 4xx would
        # make it send fred's copy again); hank is carried in the queue and delivered once
        # his Maildir is repaired.
        hank = os.path.join(WORLD.maildir, "b.test", "hank")
        shutil.rmtree(os.path.join(hank, "tmp"))
        with open(os.path.join(hank, "tmp"), "w") as f:
            f.write("broken")
        s = WORLD.session()
        self.addCleanup(s.close)
        self.assertTrue(s.cmd("EHLO mx.a.test").startswith("250"))
        self.assertTrue(s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual").startswith("250"))
        self.assertTrue(s.cmd("RCPT TO:<fred@b.test>").startswith("250"))
        self.assertTrue(s.cmd("RCPT TO:<hank@b.test>").startswith("250"))
        self.assertTrue(s.cmd("DATA").startswith("354"))
        reply = s.cmd("Subject: two\r\n\r\nfor fred and hank\r\n.")
        self.assertTrue(reply.startswith("250 2.0.0"), reply + WORLD.frontend_log())
        self.assertEqual(len(WORLD.delivered("fred")), 1)
        self.assertTrue(wait_for(lambda: "pending <hank@b.test> 451" in self.queue_listing()), self.queue_listing())
        os.remove(os.path.join(hank, "tmp"))
        os.makedirs(os.path.join(hank, "tmp"))
        flush = self.amtpd_queue("flush")
        self.assertEqual(flush.returncode, 0, flush.stderr)
        messages = wait_for(lambda: WORLD.delivered("hank"))
        self.assertEqual(len(messages), 1, WORLD.frontend_log())
        self.assertIn("MPC: per/individual\r\n", messages[0])
        self.assertIn("for fred and hank", messages[0])
        self.assertTrue(wait_for(lambda: "hank@b.test" not in self.queue_listing()))
        time.sleep(0.5)
        self.assertEqual(len(WORLD.delivered("fred")), 1)  # exactly once each
        self.assertEqual(len(WORLD.delivered("hank")), 1)

    def test_quoted_local_parts_survive_the_queue(self):
        # Envelope fields used to be split at the first space: "a b"@a.test came back
        # from the queue file as "a. Two quoted local parts (one of the longest a local
        # part may be) wait in the queue across a kill -9 and a restart.
        long_local = '"' + " ".join(["q" * 9] * 6) + ' qq"'   # 64 octets, spaces inside
        self.assertEqual(len(long_local), 64)
        recipients = ['"a b"@a.test', long_local + "@a.test"]
        off = WORLD.maildir_a + ".off"
        os.rename(WORLD.maildir_a, off)
        try:
            s = WORLD.session(cert="private", source="127.0.0.5", private=True)
            self.addCleanup(s.close)
            self.assertTrue(s.cmd("EHLO host1.customers.isp.test").startswith("250"))
            self.assertTrue(s.cmd('MAIL FROM:<"cust 8"@b.test> MPC=per/individual').startswith("250"))
            for r in recipients:
                reply = s.cmd("RCPT TO:<%s>" % r)
                self.assertTrue(reply.startswith("250"), reply)
            self.assertTrue(s.cmd("DATA").startswith("354"))
            reply = s.cmd("Subject: quoted\r\n\r\nTo a quoted local part.\r\n.")
            self.assertTrue(reply.startswith("250 2.0.0"), reply)
            s.cmd("QUIT")
            listed = wait_for(lambda: all("pending <%s> 451" % r in self.queue_listing() for r in recipients))
            self.assertTrue(listed, self.queue_listing() + WORLD.frontend_log())
            WORLD.kill_frontend(signal.SIGKILL)
        finally:
            os.rename(off, WORLD.maildir_a)
        WORLD.start_frontend()
        listing = self.queue_listing()
        for r in recipients:
            self.assertIn("pending <%s>" % r, listing)
        self.assertIn('from=<"cust 8"@b.test>', listing)
        for local in ['"a b"', long_local]:   # a.test accepts only mailboxes that exist
            WORLD.add_mailbox(local, "a.test", WORLD.maildir_a)
        self.assertEqual(self.amtpd_queue("flush").returncode, 0)
        for local in ['"a b"', long_local]:
            messages = wait_for(lambda: WORLD.delivered(local, "a.test", WORLD.maildir_a))
            self.assertEqual(len(messages), 1, WORLD.frontend_log() + WORLD.peer_log())
            self.assertIn("To a quoted local part.", messages[0])
        self.assertTrue(wait_for(lambda: '"a b"@a.test' not in self.queue_listing()))

    def amtpd_queue(self, *args):
        return subprocess.run([os.path.join(WORLD.bin, "amtpd"), "-c", os.path.join(WORLD.dir, "b.ini"), "--queue"]
                              + list(args), capture_output=True, text=True)

    def test_queue_remove_deletes_a_deferred_entry(self):
        self.submit("cust6@b.test", "gone@d.test", "per/individual")
        self.assertTrue(wait_for(lambda: "pending <gone@d.test> 421" in self.queue_listing()))
        entry = [line.split()[0] for line in self.queue_listing().splitlines() if "from=<cust6@b.test>" in line][0]
        r = self.amtpd_queue("remove", entry)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(entry, self.queue_listing())
        self.assertEqual(self.amtpd_queue("remove", "NOSUCHID").returncode, 0)  # removing nothing is not an error
        self.assertNotEqual(self.amtpd_queue("remove", "../etc").returncode, 0)

    def test_a_message_past_queue_max_age_bounces(self):
        self.submit("cust7@b.test", "late@d.test", "per/individual")
        self.assertTrue(wait_for(lambda: "pending <late@d.test> 421" in self.queue_listing()))
        config = os.path.join(WORLD.dir, "b.ini")
        with open(config) as f:
            original = f.read()
        try:
            with open(config, "w") as f:
                f.write(original.replace("retry-schedule = 1h\n", "retry-schedule = 1h\nmax-age = 1s\n"))
            time.sleep(2.2)  # ages are whole seconds: more than 1 s old for certain
            os.kill(WORLD.frontend_proc.pid, signal.SIGHUP)
            self.assertTrue(wait_for(lambda: WORLD.frontend_log().count("event=reload result=pass") >= 1))
            self.assertEqual(self.amtpd_queue("flush").returncode, 0)
            bounces = wait_for(lambda: WORLD.delivered("cust7"))
        finally:
            with open(config, "w") as f:
                f.write(original)
            os.kill(WORLD.frontend_proc.pid, signal.SIGHUP)
        self.assertEqual(len(bounces), 1, WORLD.frontend_log())
        self.assertIn("<late@d.test>: 421 4.4.7 Delivery time expired", bounces[0])
        self.assertIn("Status: 5.4.7", bounces[0])


if __name__ == "__main__":
    main()
