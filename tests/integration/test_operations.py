"""Operating the standalone server: reload on SIGHUP, IPv6, refusing what is not AMTP
on the implicit-TLS port, its privileged edges (pid file, a key only root may read,
SIGPIPE), an outgoing queue that cannot stall inbound mail, graceful stop on SIGTERM.
Connection limits are in test_limits.py.

Run: python3 tests/integration/test_operations.py --build build
"""

import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amtp_world import close_world, free_port, main, open_world, wait_until  # noqa: E402

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


def side_amtpd(test, name, edit=lambda text: text, preexec=None):
    """Another amtpd on WORLD's configuration with its own ports and queue directory
    (`edit` may change the INI text further). Returns (process, public port, private
    port, a function reading its log)."""
    import re
    import subprocess
    from amtp_world import wait_for_port
    port, private = free_port(), free_port()
    with open(WORLD.config) as f:
        text = f.read()
    text = re.sub(r"public = 127.0.0.3:\d+", "public = 127.0.0.3:%d" % port, text)
    text = re.sub(r"private = 127.0.0.3:\d+", "private = 127.0.0.3:%d" % private, text)
    text = re.sub(r"private = \[::1\]:\d+\n", "", text)
    text = re.sub(r"directory = .*queue-b", "directory = " + os.path.join(WORLD.dir, "queue-" + name), text)
    text = edit(text)
    config = os.path.join(WORLD.dir, name + ".ini")
    with open(config, "w") as f:
        f.write(text)
    log_path = os.path.join(WORLD.dir, name + ".log")
    log = open(log_path, "w")
    test.addCleanup(log.close)
    proc = subprocess.Popen([os.path.join(WORLD.bin, "amtpd"), "-c", config], stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=preexec)

    def stop():
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    test.addCleanup(stop)
    wait_for_port("127.0.0.3", port, proc)

    def read_log():
        with open(log_path) as f:
            return f.read()
    return proc, port, private, read_log


def relay_session(port, count, domain, tag):
    """`count` messages to x@`domain` through the private listener at `port`, one
    transaction each; returns how long each 250 took."""
    times = []
    s = WORLD.session(cert="private", source="127.0.0.2", private=True, port=port)
    try:
        s.cmd("EHLO host1.customers.isp.test")
        for i in range(count):
            s.cmd("MAIL FROM:<carol@b.test> MPC=per/individual")
            s.cmd("RCPT TO:<x%d@%s>" % (i, domain))
            s.cmd("DATA")
            start = time.time()
            reply = s.cmd("Subject: %s %d\r\n\r\nbody\r\n." % (tag, i))
            if not reply.startswith("250"):
                raise AssertionError("message %d: %s" % (i, reply))
            times.append(time.time() - start)
        s.cmd("QUIT")
    finally:
        s.close()
    return times


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

    def test_pidfile_symlink_not_followed(self):
        # The queue directory belongs to the unprivileged user: a link named amtpd.pid
        # planted there must not make root write through it.
        queue = os.path.join(WORLD.dir, "queue-pidlink")
        os.makedirs(queue, mode=0o700)
        victim = os.path.join(WORLD.dir, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        os.symlink(victim, os.path.join(queue, "amtpd.pid"))
        proc, port, _, read_log = side_amtpd(self, "pidlink")
        self.assertTrue(wait_until(lambda: "event=start" in read_log()), read_log())
        with open(victim) as f:
            self.assertEqual(f.read(), "precious\n")
        pid_path = os.path.join(queue, "amtpd.pid")
        self.assertFalse(os.path.islink(pid_path))
        with open(pid_path) as f:
            self.assertEqual(f.read().strip(), str(proc.pid))

    def test_pidfile_queue_flush_signals_only_amtpd(self):
        # The unprivileged user may write any pid into amtpd.pid; root's --queue flush
        # must not send SIGUSR1 (whose default action ends a process) to it.
        import subprocess
        queue = os.path.join(WORLD.dir, "queue-pidother")
        os.makedirs(queue, mode=0o700)
        victim = subprocess.Popen(["sleep", "60"])
        self.addCleanup(lambda: (victim.kill(), victim.wait()))
        with open(os.path.join(queue, "amtpd.pid"), "w") as f:
            f.write("%d\n" % victim.pid)
        with open(WORLD.config) as f:
            text = f.read().replace(os.path.join(WORLD.dir, "queue-b"), queue)
        config = os.path.join(WORLD.dir, "pidother.ini")
        with open(config, "w") as f:
            f.write(text)
        r = subprocess.run([os.path.join(WORLD.bin, "amtpd"), "-c", config, "--queue", "flush"],
                           capture_output=True, text=True, timeout=30)
        time.sleep(0.3)
        self.assertIsNone(victim.poll(), "--queue flush signalled a process that is not amtpd")
        self.assertIn("not a running amtpd", r.stderr)

    def test_sighup_keeps_working_with_a_key_only_root_can_read(self):
        import pwd
        import shutil
        if os.geteuid() != 0:
            self.fail("a key only root may read can only be tested as root (CI runs as root)")
        # Everything but the key readable by the unprivileged user, as an operator would.
        hup = os.path.join(WORLD.dir, "hup")
        os.makedirs(hup)
        os.chmod(WORLD.dir, 0o755)
        os.chmod(hup, 0o755)
        files = {}
        for name in ("server-b.chain.pem", "public-root.pem", "private-root.pem"):
            files[name] = os.path.join(hup, name)
            shutil.copy(WORLD.p(name), files[name])
            os.chmod(files[name], 0o644)
        key = os.path.join(hup, "server-b.key")
        shutil.copy(WORLD.p("server-b.key"), key)
        os.chown(key, 0, 0)
        os.chmod(key, 0o600)
        policy = os.path.join(hup, "policy.xml")
        shutil.copy(os.path.join(WORLD.dir, "policy.xml"), policy)
        os.chmod(policy, 0o644)
        maildir = os.path.join(hup, "mail")
        os.makedirs(maildir)
        os.chmod(maildir, 0o777)

        def edit(text):
            for name, path in files.items():
                text = text.replace(WORLD.p(name), path)
            text = text.replace(WORLD.p("server-b.key"), key)
            text = text.replace(os.path.join(WORLD.dir, "policy.xml"), policy)
            text = text.replace("maildir-root = " + WORLD.maildir, "maildir-root = " + maildir)
            return text.replace("hostname = mx.b.test", "hostname = mx.b.test\nuser = nobody")
        proc, port, _, read_log = side_amtpd(self, "hup", edit)
        self.assertTrue(wait_until(lambda: "event=start" in read_log()), read_log())
        s = WORLD.session(port=port)  # served: amtpd has dropped root by now
        s.close()
        with open("/proc/%d/status" % proc.pid) as f:
            uid_line = [line for line in f if line.startswith("Uid:")][0]
        self.assertEqual(set(uid_line.split()[1:]), {str(pwd.getpwnam("nobody").pw_uid)})
        os.kill(proc.pid, signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "event=reload" in read_log()), read_log())
        self.assertIn("event=reload result=pass key=kept", read_log())
        s = WORLD.session(port=port)  # new sessions run on the reloaded configuration
        self.addCleanup(s.close)
        self.assertTrue(s.cmd("EHLO mx.a.test").startswith("250-"))

    def test_sigpipe_is_ignored(self):
        # OpenSSL writes with plain send(): a peer that resets mid-write would
        # otherwise end the whole server.
        with open("/proc/%d/status" % WORLD.frontend_proc.pid) as f:
            ignored = int([line for line in f if line.startswith("SigIgn:")][0].split()[1], 16)
        self.assertTrue(ignored & (1 << (signal.SIGPIPE - 1)), "SIGPIPE is not ignored")

    def test_a_stalled_outgoing_delivery_does_not_hold_inbound_mail(self):
        # d.test's SRV names 127.0.0.7:closed_port; here something listens there and
        # never says a word, so every attempt waits for its TLS handshake timeout.
        # More such attempts than amtpd has storage threads must not delay the 250 of
        # any inbound message.
        silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind(("127.0.0.7", WORLD.closed_port))
        silent.listen(128)  # never accepted: the kernel completes the TCP handshakes
        proc, port, private, read_log = side_amtpd(self, "stall")
        self.addCleanup(silent.close)  # first: its backlog is reset and the attempts end
        queued = relay_session(private, 24, "d.test", "stalled")
        self.assertTrue(wait_until(lambda: len(os.listdir(os.path.join(WORLD.dir, "queue-stall"))) >= 24),
                        "the messages were not queued")
        time.sleep(1.0)  # every attempt has started and is waiting on the silent server
        s = WORLD.session(port=port)
        self.addCleanup(s.close)
        s.cmd("EHLO mx.a.test")
        s.cmd("MAIL FROM:<alice@a.test> MPC=per/individual")
        s.cmd("RCPT TO:<stall@b.test>")  # a mailbox of the world
        s.cmd("DATA")
        start = time.time()
        reply = s.cmd("Subject: inbound\r\n\r\nwhile the queue waits\r\n.")
        took = time.time() - start
        print("24 stalled attempts; queued 250s took at most %.2f s, the inbound 250 %.2f s"
              % (max(queued), took), file=sys.stderr)
        self.assertTrue(reply.startswith("250"), reply)
        self.assertLess(took, 5.0)
        self.assertLess(max(queued), 5.0)

    def test_sigterm_ends_running_outgoing_attempts(self):
        # An attempt waiting on a silent server (up to its 60 s TLS handshake limit)
        # must not hold amtpd's exit: SIGTERM ends it, and the message stays queued.
        silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(silent.close)
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind(("127.0.0.7", WORLD.closed_port))
        silent.listen(16)
        proc, port, private, read_log = side_amtpd(self, "termstall")
        relay_session(private, 1, "d.test", "held")
        time.sleep(1.5)  # the attempt is now waiting for the TLS handshake
        start = time.time()
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=60), 0)
        took = time.time() - start
        self.assertLess(took, 5.0, "amtpd took %.1f s to stop" % took)
        queue = os.path.join(WORLD.dir, "queue-termstall")
        self.assertEqual(len([n for n in os.listdir(queue) if n.endswith(".env")]), 1, os.listdir(queue))

    def test_an_outgoing_attempt_has_an_overall_deadline(self):
        # a.test's SRV names 127.0.0.2:peer_port. A server there with a.test's valid
        # certificate sends its greeting one continuation line a second, forever: each
        # read is well within the command timeout, so only an overall deadline ends it.
        import ssl
        import threading
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(WORLD.p("client.chain.pem"), WORLD.p("client.key"))
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.2", WORLD.peer_port))
        listener.listen(8)
        stop = threading.Event()
        self.addCleanup(stop.set)

        def dribble():
            listener.settimeout(1.0)
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except (socket.timeout, OSError):
                    continue
                try:
                    conn.settimeout(10)
                    tls = ctx.wrap_socket(conn, server_side=True)
                    while not stop.is_set():
                        tls.sendall(b"220-mx.a.test still greeting\r\n")
                        time.sleep(1.0)
                except (OSError, ssl.SSLError):
                    pass
                finally:
                    conn.close()
        thread = threading.Thread(target=dribble, daemon=True)
        thread.start()

        def edit(text):
            return text.replace("[queue]\n", "[queue]\nattempt-timeout = 5s\n")
        proc, port, private, read_log = side_amtpd(self, "deadline", edit)
        start = time.time()
        relay_session(private, 1, "a.test", "slow")
        self.assertTrue(wait_until(lambda: "event=relay" in read_log(), seconds=30.0), read_log()[-3000:])
        took = time.time() - start
        log = read_log()
        self.assertIn("result=deferred", log)
        self.assertIn("attempt deadline", log)
        self.assertLess(took, 20.0)

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
