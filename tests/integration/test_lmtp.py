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
from amtp_world import close_world, main, open_world  # noqa: E402

WORLD = None
DOVECOT = None
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
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%d/%n
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


if __name__ == "__main__":
    main()
