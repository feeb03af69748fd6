"""A small AMTP world on loopback for over-the-wire tests of any front-end.

Real parts only: certificates made by tests/support/make-test-pki.sh (the openssl
command), a real unbound on 127.0.0.1 with the test zones, and the front-end started by
tools/amtp-serve FRONTEND CONFIG on one shared INI file and policy XML.

Hosts (each its own loopback address, with its own PTR record or lack of one):
  127.0.0.2  mx.a.test       the sending site (PTR mx.a.test)
  127.0.0.3  mx.b.test       the site under test (public and private listeners)
  127.0.0.4  PTR other.a.test (mismatch)      127.0.0.5  no PTR at all
  127.0.0.6  PTR lookup SERVFAILs             127.0.0.8  an ISP customer (pinned cert)
  127.0.0.9  mx.c.test (serverAuth-only certificate)
"""

import argparse
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


_HANDED_OUT = set()


def _listener_port_range():
    """Ports outside the kernel's ephemeral range: a port the kernel may give to any
    client socket (parallel suites connect from the same 127.0.0.x addresses) could be
    taken between the moment a test picks it and the moment its server binds it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    if low > 11000:
        return 10000, low - 1
    if high < 64000:
        return high + 1, 65000
    return 10000, 65000


def free_port():
    """A port for a test's listener: outside the ephemeral range, random (so that suites
    running in parallel do not pick the same one), never handed out twice by this
    process, and free on every address when picked."""
    low, high = _listener_port_range()
    for _ in range(500):
        port = random.randint(low, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port in %d-%d" % (low, high))


# What a front-end's MTA can carry (profile B5). Without the MAIL parameter the MPC
# travels in the AMTP-MPC header field and is judged at the end of DATA.
MPC_PARAMETER = {"standalone": True, "haraka": True, "opensmtpd": True, "exim": False}


def mail_line(sender="alice@a.test", mpc="per/individual"):
    """MAIL as the front-end under test takes it: with MPC= or, on a header-carrier
    front-end, without it (data_prefix then supplies the AMTP-MPC field)."""
    return "MAIL FROM:<%s>%s" % (sender, " MPC=" + mpc if MPC_PARAMETER[ARGS.frontend] else "")


def data_prefix(mpc="per/individual"):
    return "" if MPC_PARAMETER[ARGS.frontend] else "AMTP-MPC: %s\r\n" % mpc


# --- the front-end's processes ------------------------------------------------------
# tools/amtp-serve starts a front-end with start_new_session, so its pid is the session
# id of every process it runs (Exim's children, smtpd's, Haraka's sidecar).
def session_pids(sid):
    """The pids of every process in session `sid`."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
            # Fields after the parenthesised command: state ppid pgrp session ...
            if int(stat[stat.rindex(")") + 2:].split()[3]) == sid:
                out.append(int(name))
        except (OSError, ValueError):
            continue  # the process ended while we looked
    return out


def process_kib(pid, proportional=False):
    """VmRSS of `pid` in KiB, or with `proportional` its Pss (a page shared by forked
    processes counted once across them; VmRSS where smaps_rollup cannot be read).
    None when the process is gone."""
    try:
        if proportional:
            try:
                with open("/proc/%d/smaps_rollup" % pid) as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            return int(line.split()[1])
            except OSError:
                pass
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def session_kib(sid, proportional=False):
    """{pid: KiB} for every live process of session `sid` (see process_kib)."""
    out = {}
    for pid in session_pids(sid):
        value = process_kib(pid, proportional)
        if value is not None:
            out[pid] = value
    return out


def wait_until(predicate, seconds=15.0):
    """True as soon as predicate() is; its last answer after `seconds`."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def wait_for_port(host, port, proc, seconds=20.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("process exited with status %s before listening" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %s:%d after %.0f s" % (host, port, seconds))


# The mailboxes that exist in b.test and a.test: delivery.recipients defaults to
# "mailbox", so a recipient is accepted only when its Maildir exists. Every mailbox the
# suites deliver to is listed here; a test that needs another calls add_mailbox().
MAILBOXES_B = (
    "after-flood afterflood after-reset bench bob bob2 carol carrier conflict cust cust1 cust2 cust3 cust4 cust5 cust6 "
    "cust7 dora dropped durable erin forged fred free full gus hank hijack ivy kill late mallory-target many multi1 "
    "multi2 nocom nompc patient pipe postmaster-reports quinn reset soak stall trace warm-up warmup x zed").split()
MAILBOXES_A = "a admin ads alice alice3 b cust ivy list retry shop yan".split()


def add_mailbox(root, domain, name):
    """Creates the Maildir <root>/<domain>/<name>/{tmp,new,cur}, writable by any user
    (some suites drop the server's privileges)."""
    for d in (os.path.join(root, domain), os.path.join(root, domain, name)) + tuple(
            os.path.join(root, domain, name, sub) for sub in ("tmp", "new", "cur")):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o777)


class World:
    def __init__(self, frontend, build_dir, limits="", listen_extra="", delivery_extra="", extra_sources=0,
                 bench_ptrs=0, tls_extra=""):
        self.frontend = frontend
        self.limits = limits              # extra lines for [limits]
        self.listen_extra = listen_extra  # extra lines for [listen]
        self.tls_extra = tls_extra        # extra lines for [tls]
        self.delivery_extra = delivery_extra  # extra lines for [delivery]
        # 127.0.0.30 ... : more addresses of mx.a.test (PTR mx.a.test), for load tests.
        self.extra_sources = ["127.0.0.%d" % (30 + i) for i in range(extra_sources)]
        self.bench_ptrs = bench_ptrs  # PTRs of 127.1.0.1 ... for the resolver benchmark
        self.build_dir = os.path.abspath(build_dir)
        self.bin = os.path.join(self.build_dir, "bin")
        self.dir = tempfile.mkdtemp(prefix="amtp-world-", dir=os.path.join(self.build_dir, "test-work")
                                    if os.path.isdir(os.path.join(self.build_dir, "test-work")) else None)
        self.procs = []
        self.logs = []
        self.pki = os.path.join(self.build_dir, "test-work", "pki")
        subprocess.run([os.path.join(ROOT, "tests/support/make-test-pki.sh"), self.pki], check=True)
        self.dns_port = free_port()
        self.public_port = free_port()
        self.private_port = free_port()
        self.closed_port = free_port()  # nothing listens there: connection refused
        self.peer_port = free_port()    # a.test's own amtpd, when a test starts it
        self.peer_private_port = free_port()  # and its private listener (submission)
        self.maildir = os.path.join(self.dir, "mail")
        os.makedirs(self.maildir)
        for name in MAILBOXES_B:
            add_mailbox(self.maildir, "b.test", name)

    # --- files -------------------------------------------------------------------
    def p(self, name):
        return os.path.join(self.pki, name)

    def fact(self, name):
        with open(self.p(name)) as f:
            return f.read().strip()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # --- DNS ---------------------------------------------------------------------
    def start_dns(self):
        records = [
            "mx.a.test. 300 IN A 127.0.0.2",
            "mx.b.test. 300 IN A 127.0.0.3",
            "mx.c.test. 300 IN A 127.0.0.9",
            "mx.d.test. 300 IN A 127.0.0.7",
            "_amtp._tcp.b.test. 300 IN SRV 10 0 %d mx.b.test." % self.public_port,
            "_amtp._tcp.d.test. 300 IN SRV 10 0 %d mx.d.test." % self.closed_port,
            "_amtp._tcp.a.test. 300 IN SRV 10 0 %d mx.a.test." % self.peer_port,
        ]
        ptrs = ["127.0.0.2 mx.a.test.", "127.0.0.3 mx.b.test.", "127.0.0.4 other.a.test.",
                "127.0.0.9 mx.c.test.", "127.0.0.7 mx.d.test."]
        ptrs += ["%s mx.a.test." % a for a in self.extra_sources]
        ptrs += ["127.1.%d.%d h%d.bench.test." % (i // 250, 1 + i % 250, i) for i in range(self.bench_ptrs)]
        zone = os.path.join(self.dir, "servfail.zone")
        with open(zone, "w") as f:
            f.write("$ORIGIN 6.0.0.127.in-addr.arpa.\n"
                    "@ 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n"
                    "@ 3600 IN NS ns.test.\n@ 3600 IN PTR servfail.test.\n")
        conf = ["server:", "  interface: 127.0.0.1", "  port: %d" % self.dns_port, "  so-reuseport: no",
                "  do-daemonize: no", '  username: ""', '  chroot: ""', '  pidfile: ""',
                '  directory: "%s"' % self.dir, "  use-syslog: no", '  logfile: ""', "  num-threads: 1",
                "  do-ip6: no", "  outgoing-interface: 127.0.0.1", "  access-control: 127.0.0.0/8 allow",
                "  do-not-query-localhost: no", '  local-zone: "." refuse',
                '  local-zone: "test." static', '  local-zone: "127.in-addr.arpa." static',
                "  msg-cache-size: 32m", "  rrset-cache-size: 64m"]
        conf += ['  local-data: "%s"' % r for r in records]
        conf += ['  local-data-ptr: "%s"' % r for r in ptrs]
        # SERVFAIL on demand: an unsigned zone under a made-up trust anchor.
        conf += ['  local-zone: "6.0.0.127.in-addr.arpa." transparent',
                 '  trust-anchor: "6.0.0.127.in-addr.arpa. DS 12345 8 2 '
                 '49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE0C7C8D5C2D6A1C1D2E3F4A5B"',
                 "auth-zone:", '  name: "6.0.0.127.in-addr.arpa."', '  zonefile: "%s"' % zone,
                 "  for-downstream: no", "  for-upstream: yes", "  fallback-enabled: no",
                 "remote-control:", "  control-enable: no"]
        path = self.write("unbound.conf", "\n".join(conf) + "\n")
        log = open(os.path.join(self.dir, "unbound.log"), "w")
        self.logs.append(log)
        unbound = shutil.which("unbound") or "/usr/sbin/unbound"
        proc = subprocess.Popen([unbound, "-d", "-c", path], stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        deadline = time.time() + 10
        while time.time() < deadline:
            out = subprocess.run(["dig", "+short", "+tries=1", "+time=1", "-p", str(self.dns_port), "@127.0.0.1",
                                  "mx.b.test", "A"], capture_output=True, text=True).stdout
            if "127.0.0.3" in out:
                return
            time.sleep(0.1)
        raise RuntimeError("unbound did not answer; see %s/unbound.log" % self.dir)

    # --- configuration -------------------------------------------------------------
    def dns_section(self):
        # A named resolver answers every zone, test. and 127.in-addr.arpa. included:
        # no dns.nodefault-zone lines are needed.
        return "[dns]\nresolver = 127.0.0.1@%d\ntimeout = 3s\n" % self.dns_port

    def site_config(self):
        policy = self.write("policy.xml", """<?xml version="1.0"?>
<amtp-policy>
  <advertise> <deny mpc="*/optout"/> </advertise>
  <recipient address="nocom@b.test"> <deny mpc="com/*"/> </recipient>
  <recipient address="nocom@a.test"> <deny mpc="com/*"/> </recipient>
  <private-network name="isp">
    <pin sha256="%s" from="127.0.0.8/32"/>
  </private-network>
</amtp-policy>
""" % self.fact("pinned.sha256"))
        return self.write("b.ini", """hostname = mx.b.test
[listen]
public = 127.0.0.3:%d
private = 127.0.0.3:%d
%s[tls]
certificate = %s
key = %s
trusted-ca = %s
private-ca = %s
%s%s[delivery]
local-domain = b.test
maildir-root = %s
%s[policy]
file = %s
[client]
source = 127.0.0.3
[queue]
directory = %s
retry-schedule = 1h
[limits]
%s%s""" % (self.public_port, self.private_port, self.listen_extra, self.p("server-b.chain.pem"), self.p("server-b.key"),
       self.p("public-root.pem"), self.p("private-root.pem"), self.tls_extra, self.dns_section(), self.maildir,
       self.delivery_extra, policy,
       os.path.join(self.dir, "queue-b"),
       "" if "command-timeout" in self.limits else "command-timeout = 30s\n", self.limits))

    def sender_config(self, cert="client", source="127.0.0.2"):
        return self.write("a-%s.ini" % cert, """hostname = mx.a.test
[tls]
certificate = %s
key = %s
trusted-ca = %s
%s[client]
source = %s
""" % (self.p(cert + ".chain.pem"), self.p(cert + ".key"), self.p("public-root.pem"), self.dns_section(), source))

    # --- processes -----------------------------------------------------------------
    def start_frontend(self):
        self.config = self.site_config()
        log = open(os.path.join(self.dir, "frontend.log"), "w")
        self.logs.append(log)
        env = dict(os.environ, AMTP_BUILD_DIR=self.build_dir)
        proc = subprocess.Popen([os.path.join(ROOT, "tools/amtp-serve"), self.frontend, self.config],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(proc)
        self.frontend_proc = proc
        wait_for_port("127.0.0.3", self.public_port, proc)
        wait_for_port("127.0.0.3", self.private_port, proc)

    def kill_frontend(self, sig=signal.SIGKILL):
        """Kills the front-end (tools/amtp-serve execs it, so its pid is the server's)."""
        proc = self.frontend_proc
        os.killpg(proc.pid, sig)
        self.frontend_exit_status = proc.wait(timeout=30)
        self.procs.remove(proc)

    def start_peer_a(self):
        """a.test's own amtpd on 127.0.0.2: the far end of relay tests, and the start of
        interop tests (its private listener takes submissions it relays from 127.0.0.2).
        It declares DENY com/optin so that a relayed message can meet an MPC DENY."""
        self.maildir_a = os.path.join(self.dir, "mail-a")
        os.makedirs(self.maildir_a, exist_ok=True)
        for name in MAILBOXES_A:
            add_mailbox(self.maildir_a, "a.test", name)
        policy = self.write("policy-a.xml", '<amtp-policy><advertise><deny mpc="com/optin"/></advertise></amtp-policy>\n')
        config = self.write("a-server.ini", """hostname = mx.a.test
[listen]
public = 127.0.0.2:%d
private = 127.0.0.2:%d
[tls]
certificate = %s
key = %s
trusted-ca = %s
private-ca = %s
%s[delivery]
local-domain = a.test
maildir-root = %s
[policy]
file = %s
[client]
source = 127.0.0.2
[queue]
directory = %s
""" % (self.peer_port, self.peer_private_port, self.p("client.chain.pem"), self.p("client.key"),
       self.p("public-root.pem"), self.p("private-root.pem"), self.dns_section(), self.maildir_a, policy,
       os.path.join(self.dir, "queue-a")))
        log = open(os.path.join(self.dir, "peer-a.log"), "w")
        self.logs.append(log)
        proc = subprocess.Popen([os.path.join(self.bin, "amtpd"), "-c", config], stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        wait_for_port("127.0.0.2", self.peer_port, proc)

    def peer_log(self):
        with open(os.path.join(self.dir, "peer-a.log")) as f:
            return f.read()

    def frontend_log(self, since=0):
        """The front-end's log from byte offset `since` (see frontend_log_size)."""
        with open(os.path.join(self.dir, "frontend.log"), "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def frontend_log_size(self):
        """Bytes in the front-end's log so far: a test remembers it when it starts, and
        reads only what was written after it (frontend_log(since=...))."""
        return os.path.getsize(os.path.join(self.dir, "frontend.log"))

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM) if proc is getattr(self, "frontend_proc", None) \
                        else proc.terminate()
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for log in self.logs:
            log.close()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- clients -------------------------------------------------------------------
    def amtp_send(self, args, message="Subject: test\r\n\r\nHello.\r\n", cert="client", source="127.0.0.2",
                  config=None):
        cmd = [os.path.join(self.bin, "amtp-send"), "-c", config or self.sender_config(cert, source)] + args
        return subprocess.run(cmd, input=message.encode(), capture_output=True, timeout=120)

    def session(self, cert="client", source="127.0.0.2", private=False, host="127.0.0.3", port=None,
                tls_session=None):
        return WireSession(self, cert, source, port or (self.private_port if private else self.public_port), host,
                           tls_session)

    def add_mailbox(self, name, domain="b.test", root=None):
        add_mailbox(root or self.maildir, domain, name)

    def wait_delivered(self, mailbox, count, seconds=15.0, domain="b.test", root=None):
        """delivered(), once `count` messages are there (or the time is up): front-ends
        such as Exim acknowledge once the message is safe in their spool and write the
        Maildir a moment later."""
        deadline = time.time() + seconds
        while True:
            found = self.delivered(mailbox, domain, root)
            if len(found) >= count or time.time() > deadline:
                return found
            time.sleep(0.05)

    def delivered(self, mailbox, domain="b.test", root=None):
        """Messages in <maildir>/<domain>/<mailbox>/new, oldest first."""
        d = os.path.join(root or self.maildir, domain, mailbox, "new")
        if not os.path.isdir(d):
            return []
        names = sorted(os.listdir(d), key=lambda n: os.stat(os.path.join(d, n)).st_mtime)
        out = []
        for n in names:
            with open(os.path.join(d, n), "rb") as f:
                out.append(f.read().decode("utf-8", "replace"))
        return out


class WireSession:
    """An AMTP client session by hand: implicit TLS with a chosen certificate from a
    chosen source address, then raw commands and parsed replies."""

    contexts = {}  # one client context per certificate, so TLS sessions can be resumed

    def __init__(self, world, cert, source, port, host="127.0.0.3", tls_session=None):
        key = (world.pki, cert)
        if key not in WireSession.contexts:
            WireSession.contexts[key] = self.make_context(world, cert)
        ctx = WireSession.contexts[key]
        raw = socket.create_connection((host, port), timeout=20, source_address=(source, 0))
        self.sock = ctx.wrap_socket(raw, server_hostname="mx.b.test", session=tls_session)
        self.buf = b""
        self.greeting = self.reply()

    @staticmethod
    def make_context(world, cert):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(world.p("public-root.pem"))
        if cert:
            ctx.load_cert_chain(world.p(cert + ".chain.pem"), world.p(cert + ".key"))
        return ctx

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed; got %r" % lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            line = line.decode("utf-8", "replace")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def send_raw(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --- running a suite -------------------------------------------------------------
ARGS = None  # the command line of the suite being run (set by main)


def main():
    """Parses --frontend/--build/--keep and runs the calling module's tests."""
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--frontend", default="standalone")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--keep", action="store_true", help="keep the world's directory for inspection")
    ARGS, rest = parser.parse_known_args()
    unittest.main(module="__main__", argv=[sys.argv[0], "-v"] + rest)


def open_world(start_peer=False, **options):
    """A world with DNS, optionally a.test's own amtpd, and the front-end under test."""
    world = World(ARGS.frontend, ARGS.build, **options)
    try:
        world.start_dns()
        if start_peer:
            world.start_peer_a()
        world.start_frontend()
    except Exception:
        world.stop()
        raise
    return world


def close_world(world):
    world.stop()
    if ARGS.keep:
        print("world kept in", world.dir, file=sys.stderr)
    else:
        world.cleanup()
