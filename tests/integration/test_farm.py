"""Several amtpd serving one domain (a farm) with shared TLS session ticket keys
(tls.ticket-keys): a session made with one host resumes with another and keeps the
identity verified on its full handshake; a rotation (amtp-config --new-ticket-key, then
SIGHUP on every host) keeps the previous key's tickets resuming, and the key after
next retires them. The world's amtpd on 127.0.0.3 is host A; host B is a second amtpd
on 127.0.0.13, started the same way (tools/amtp-serve standalone) on a copy of A's
configuration with its own listeners and queue.

Run: python3 tests/integration/test_farm.py --build build
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amtp_world  # noqa: E402
from amtp_world import ROOT, close_world, free_port, main, open_world, wait_for_port, wait_until  # noqa: E402

WORLD = None
KEYS_DIR = None
KEYS = None             # the shared tls.ticket-keys file
TWIN = None             # host B: {"proc", "address", "port", "private_port", "config", "log"}
TWIN_ADDRESS = "127.0.0.13"
EX_CONFIG = 78


def amtp_config(*args):
    return subprocess.run([os.path.join(WORLD.bin if WORLD else os.path.join(amtp_world.ARGS.build, "bin"),
                                        "amtp-config")] + list(args), capture_output=True, text=True, timeout=60)


def new_ticket_key():
    r = amtp_config("--new-ticket-key", KEYS)
    assert r.returncode == 0, r.stderr
    return r.stdout


def start_twin():
    """Host B: A's configuration with B's own listeners, client source and queue,
    started as the world starts A."""
    port, private = free_port(), free_port()
    with open(WORLD.config) as f:
        text = f.read()
    text = re.sub(r"public = 127\.0\.0\.3:\d+", "public = %s:%d" % (TWIN_ADDRESS, port), text)
    text = re.sub(r"private = 127\.0\.0\.3:\d+", "private = %s:%d" % (TWIN_ADDRESS, private), text)
    text = text.replace("source = 127.0.0.3", "source = " + TWIN_ADDRESS)
    text = re.sub(r"directory = .*queue-b", "directory = " + os.path.join(WORLD.dir, "queue-twin"), text)
    config = WORLD.write("twin.ini", text)
    log_path = os.path.join(WORLD.dir, "twin.log")
    log = open(log_path, "w")
    WORLD.logs.append(log)
    env = dict(os.environ, AMTP_BUILD_DIR=WORLD.build_dir)
    proc = subprocess.Popen([os.path.join(ROOT, "tools/amtp-serve"), "standalone", config], stdout=log,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    WORLD.procs.append(proc)   # stopped with the world
    wait_for_port(TWIN_ADDRESS, port, proc)
    return {"proc": proc, "port": port, "private_port": private, "config": config, "log": log_path}


def twin_log():
    with open(TWIN["log"], "rb") as f:
        return f.read().decode("utf-8", "replace")


def setUpModule():
    global WORLD, KEYS_DIR, KEYS, TWIN
    work = os.path.join(os.path.abspath(amtp_world.ARGS.build), "test-work")
    KEYS_DIR = tempfile.mkdtemp(prefix="amtp-farm-", dir=work if os.path.isdir(work) else None)
    KEYS = os.path.join(KEYS_DIR, "ticket.keys")
    r = subprocess.run([os.path.join(amtp_world.ARGS.build, "bin", "amtp-config"), "--new-ticket-key", KEYS],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("amtp-config --new-ticket-key: " + r.stderr)
    WORLD = open_world(tls_extra="ticket-keys = %s\n" % KEYS)
    try:
        WORLD.add_mailbox("farm")
        TWIN = start_twin()
    except Exception:
        close_world(WORLD)
        raise


def tearDownModule():
    close_world(WORLD)
    shutil.rmtree(KEYS_DIR, ignore_errors=True)


class Farm(unittest.TestCase):
    def session(self, on_twin=False, **options):
        if on_twin:
            options.setdefault("host", TWIN_ADDRESS)
            options.setdefault("port", TWIN["port"])
        s = WORLD.session(**options)
        self.addCleanup(s.close)
        return s

    def ticket_from_a(self):
        """A session ticket from host A, after a full handshake there."""
        s = self.session()
        self.assertFalse(s.sock.session_reused)
        self.assertTrue(s.cmd("EHLO mx.a.test").startswith("250-"))  # the ticket arrives by now
        ticket = s.sock.session
        s.close()
        return ticket

    def reload_both(self):
        """SIGHUP to A and B (tools/amtp-serve execs amtpd); returns once both logged a
        successful reload."""
        logs = (WORLD.frontend_log, twin_log)
        before = [log().count("event=reload result=pass") for log in logs]
        os.kill(WORLD.frontend_proc.pid, signal.SIGHUP)
        os.kill(TWIN["proc"].pid, signal.SIGHUP)
        for log, count in zip(logs, before):
            self.assertTrue(wait_until(lambda: log().count("event=reload result=pass") > count), log())

    def assertResumedAsVerified(self, s, log):
        """`s` resumed its TLS session, is accepted as mx.a.test, and the host logged the
        session as resumed with the identity verified on the full handshake."""
        self.assertTrue(s.sock.session_reused)
        self.assertTrue(s.cmd("EHLO mx.a.test").startswith("250-"))
        connects = re.findall(r"event=connect session=(\S+) peer=127\.0\.0\.2 listener=public tls=\S+ "
                              r"cert=verified resumed=yes subject=(\"[^\"]*\"|\S+)", log())
        self.assertTrue(connects, log())
        session_id, subject = connects[-1]
        self.assertIn("mx.a.test", subject)
        self.assertTrue(wait_until(lambda: re.search(r"event=ehlo session=%s peer=127\.0\.0\.2 result=pass "
                                                     r".*cert=mx\.a\.test" % re.escape(session_id), log())),
                        log())

    def test_a_session_made_with_one_host_resumes_on_another_with_its_verified_identity(self):
        ticket = self.ticket_from_a()
        b = self.session(on_twin=True, tls_session=ticket)
        self.assertResumedAsVerified(b, twin_log)
        # The resumed session carries mail like a full one, with the same trace fields.
        self.assertTrue(b.cmd("MAIL FROM:<alice@a.test> MPC=per/individual").startswith("250"))
        self.assertTrue(b.cmd("RCPT TO:<farm@b.test>").startswith("250"))
        self.assertTrue(b.cmd("DATA").startswith("354"))
        self.assertTrue(b.cmd("Subject: farm\r\n\r\nResumed on host B.\r\n.").startswith("250"))
        messages = [m for m in WORLD.wait_delivered("farm", 1) if "Resumed on host B." in m]
        self.assertEqual(len(messages), 1)
        self.assertTrue(messages[0].startswith("Received: from mx.a.test (mx.a.test [127.0.0.2])"), messages[0])
        self.assertIn("x-amtp=pass", messages[0])
        # The identity stays bound to the address on every host of the farm.
        elsewhere = self.session(on_twin=True, source="127.0.0.4", tls_session=ticket)
        self.assertTrue(elsewhere.sock.session_reused)
        self.assertTrue(elsewhere.cmd("EHLO mx.a.test").startswith("504 5.7.1"))

    def test_after_a_rotation_old_tickets_resume_renewed_and_after_the_next_they_do_not(self):
        old = self.ticket_from_a()

        self.assertIn("1 older kept", new_ticket_key())   # [new, old]
        self.reload_both()
        self.assertRegex(twin_log(), r"event=reload result=pass key=read ticket_keys=2")
        b = self.session(on_twin=True, tls_session=old)
        self.assertResumedAsVerified(b, twin_log)
        renewed = b.sock.session     # a fresh ticket, made with the new key
        b.close()
        a = self.session(tls_session=old)
        self.assertResumedAsVerified(a, WORLD.frontend_log)

        self.assertIn("1 dropped", new_ticket_key())      # [newer, new]: the old key is gone
        self.reload_both()
        for on_twin in (False, True):
            s = self.session(on_twin=on_twin, tls_session=old)
            self.assertFalse(s.sock.session_reused)        # a full handshake ...
            self.assertTrue(s.cmd("EHLO mx.a.test").startswith("250-"))   # ... verified from the chain
        # The ticket renewed after the first rotation is still good everywhere.
        for on_twin, log in ((True, twin_log), (False, WORLD.frontend_log)):
            self.assertResumedAsVerified(self.session(on_twin=on_twin, tls_session=renewed), log)

    def test_a_reload_with_an_unusable_key_file_fails_and_keeps_the_keys_in_use(self):
        ticket = self.ticket_from_a()
        before = twin_log().count("event=reload result=fail")
        os.chmod(KEYS, 0o640)
        try:
            os.kill(TWIN["proc"].pid, signal.SIGHUP)
            self.assertTrue(wait_until(lambda: twin_log().count("event=reload result=fail") > before), twin_log())
        finally:
            os.chmod(KEYS, 0o600)
        self.assertIn("open to group or others", twin_log())
        self.assertResumedAsVerified(self.session(on_twin=True, tls_session=ticket), twin_log)

    def test_check_config_refuses_a_key_file_others_may_read_or_amtpd_could_not_read_after_start(self):
        loose = os.path.join(KEYS_DIR, "loose.keys")
        shutil.copy(KEYS, loose)
        os.chmod(loose, 0o644)
        with open(WORLD.config) as f:
            text = f.read()
        config = WORLD.write("loose.ini", text.replace(KEYS, loose))
        for program in ("amtpd", "amtp-config"):
            r = subprocess.run([os.path.join(WORLD.bin, program), "-c" if program == "amtpd" else "--check-config",
                                config] + (["--check-config"] if program == "amtpd" else []),
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, EX_CONFIG, program + ": " + r.stderr)
            self.assertIn(loose + ": tls.ticket-keys: the ticket key file is open to group or others (mode 0644)",
                          r.stderr)
            with open(KEYS) as f:
                hmac_key = f.read().split("\n")[2].split()[1]
            self.assertNotIn(hmac_key, r.stdout + r.stderr)   # no key material, ever
        if os.geteuid() != 0:
            return
        # Run as root with user = nobody, amtpd reads the file again as nobody at every
        # reload: one only root may read is refused before it could fail a reload.
        os.chmod(loose, 0o600)
        config = WORLD.write("nobody.ini", "user = nobody\n" + text.replace(KEYS, loose))
        r = subprocess.run([os.path.join(WORLD.bin, "amtpd"), "-c", config, "--check-config"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, EX_CONFIG, r.stderr)
        self.assertIn("tls.ticket-keys: owned by uid 0, but amtpd reads it as nobody at every reload", r.stderr)


if __name__ == "__main__":
    main()
