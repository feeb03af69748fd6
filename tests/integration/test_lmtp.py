"""delivery.lmtp: local recipients handed to a real local delivery agent (Dovecot's
LMTP server on a Unix socket in the test directory) with the MPC field and trace.

Run: python3 tests/integration/test_lmtp.py --build build
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amtp_world  # noqa: E402
from amtp_world import close_world, main, open_world  # noqa: E402

WORLD = None
DOVECOT = None
USERS = ("bob", "carol", "dora", "erin", "fred", "gus")
DV_DIR = None


def dovecot_config(d):
    return """base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = lmtp
ssl = no
listen = 127.0.0.1
mail_location = maildir:{d}/mail/%d/%n
default_internal_user = dovecot
default_login_user = dovenull
mail_plugins = quota
plugin {{
  quota = maildir:User quota
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
  default_fields = uid=nobody gid=nogroup home={d}/mail/%d/%n
}}
passdb {{
  driver = static
  args = nopassword=y
}}
service lmtp {{
  unix_listener {d}/lmtp.sock {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
""".format(d=d)


def setUpModule():
    global WORLD, DOVECOT, DV_DIR
    # A short path: a Unix socket name must fit in 108 bytes.
    DV_DIR = tempfile.mkdtemp(prefix="amtp-lmtp-")
    os.chmod(DV_DIR, 0o755)
    for sub in ("run", "state", "mail"):
        os.makedirs(os.path.join(DV_DIR, sub))
    os.chmod(os.path.join(DV_DIR, "mail"), 0o777)
    # The agent's own users: "tiny" has a quota no message fits in (552 after DATA);
    # a name not listed is refused at RCPT (550 5.1.1).
    with open(os.path.join(DV_DIR, "users"), "w") as f:
        for user in USERS:
            f.write("%s@b.test:::::::\n" % user)
        f.write("tiny@b.test:::::::userdb_quota_rule=*:storage=1B\n")
    conf = os.path.join(DV_DIR, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(dovecot_config(DV_DIR))
    DOVECOT = subprocess.Popen(["/usr/sbin/dovecot", "-F", "-c", conf], stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT)
    deadline = time.time() + 15
    while not os.path.exists(os.path.join(DV_DIR, "lmtp.sock")) and time.time() < deadline:
        time.sleep(0.05)
    WORLD = open_world(delivery_extra="lmtp = unix:%s/lmtp.sock\n" % DV_DIR)


def tearDownModule():
    close_world(WORLD)
    DOVECOT.terminate()
    DOVECOT.wait(timeout=30)
    shutil.rmtree(DV_DIR, ignore_errors=True)


def dovecot_messages(mailbox):
    d = os.path.join(DV_DIR, "mail", "b.test", mailbox, "new")
    if not os.path.isdir(d):
        return []
    out = []
    for n in sorted(os.listdir(d)):
        with open(os.path.join(d, n), "rb") as f:
            out.append(f.read().decode("utf-8", "replace"))
    return out


class Lmtp(unittest.TestCase):
    def test_local_recipients_go_to_the_lmtp_agent_with_the_mpc_field(self):
        r = WORLD.amtp_send(["--mpc", "per/individual", "-f", "alice@a.test", "bob@b.test", "carol@b.test"],
                            message="Subject: via lmtp\r\n\r\nHello.\r\n")
        self.assertEqual(r.returncode, 0, r.stderr.decode() + WORLD.frontend_log())
        for box in ("bob", "carol"):
            msgs = dovecot_messages(box)
            self.assertEqual(len(msgs), 1, box)
            m = msgs[0].replace("\r\n", "\n")
            self.assertIn("with AMTP", m)
            self.assertIn("\nMPC: per/individual\nSubject: via lmtp\n", m)
        self.assertEqual(WORLD.delivered("bob"), [])  # not in amtpd's own Maildir

    def test_an_lmtp_agent_that_is_down_gives_a_4xx_and_nothing_is_acknowledged(self):
        sock = os.path.join(DV_DIR, "lmtp.sock")
        os.rename(sock, sock + ".away")
        try:
            r = WORLD.amtp_send(["--mpc", "per/individual", "-f", "alice@a.test", "dora@b.test"])
        finally:
            os.rename(sock + ".away", sock)
        self.assertEqual(r.returncode, 75, r.stderr.decode())
        self.assertIn(b"451 4.3.0", r.stderr)
        self.assertEqual(dovecot_messages("dora"), [])

    def session_to(self, recipients, body):
        s = WORLD.session()
        self.addCleanup(s.close)
        self.assertTrue(s.cmd("EHLO mx.a.test").startswith("250"))
        self.assertTrue(s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual").startswith("250"))
        for r in recipients:
            reply = s.cmd("RCPT TO:<%s>" % r)
            self.assertTrue(reply.startswith("250"), reply)
        self.assertTrue(s.cmd("DATA").startswith("354"))
        return s.cmd(body + "\r\n.")

    def test_lmtp_partial_refusal_delivers_each_recipient_once(self):
        # The agent refuses ghost at RCPT (no such user) and tiny after the data (over
        # quota) and delivers erin: the client hears 250 (erin's copy is durable, a 4xx
        # would make it send that copy again) and only the refused ones are bounced, in
        # one RFC 3464 report queued for alice (amtpd's queue; for Haraka, its relay
        # sidecar's, which is the same directory).
        reply = self.session_to(["erin@b.test", "ghost@b.test", "tiny@b.test"],
                                "Subject: partial\r\n\r\nfor three\r\n")
        self.assertTrue(reply.startswith("250 2.0.0"), reply + WORLD.frontend_log())
        self.assertEqual(len(dovecot_messages("erin")), 1)
        self.assertEqual(dovecot_messages("tiny"), [])
        self.assertIn("carried=ghost@b.test,tiny@b.test", WORLD.frontend_log())
        queue = os.path.join(WORLD.dir, "queue-b")

        def reports():
            out = []
            for name in os.listdir(queue) if os.path.isdir(queue) else []:
                try:
                    with open(os.path.join(queue, name), "rb") as f:
                        text = f.read().decode("utf-8", "replace")
                except OSError:
                    continue
                if "Final-Recipient" in text:
                    out.append(text)
            return out
        deadline = time.time() + 15
        while not reports() and time.time() < deadline:
            time.sleep(0.1)
        report = reports()
        self.assertEqual(len(report), 1, WORLD.frontend_log())
        self.assertIn("Final-Recipient: rfc822; ghost@b.test", report[0])
        self.assertIn("Final-Recipient: rfc822; tiny@b.test", report[0])
        self.assertIn("Status: 5.1.1", report[0])  # the agent's own code for ghost
        self.assertNotIn("Final-Recipient: rfc822; erin@b.test", report[0])
        time.sleep(0.5)
        self.assertEqual(len(dovecot_messages("erin")), 1)  # exactly once

    def test_lmtp_every_recipient_refused_is_554_5_0_0(self):
        reply = self.session_to(["ghost2@b.test"], "Subject: nobody\r\n\r\nx\r\n")
        self.assertTrue(reply.startswith("554 5.0.0 "), reply)
        self.assertIn("reason=delivery_refused", WORLD.frontend_log())


if __name__ == "__main__":
    main()
