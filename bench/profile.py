#!/usr/bin/env python3
"""Where the time goes in figure 3's adapters, figure 2's Maildir delivery and figure 1's
sessions: CPU per delivered message (figure 1: per session) for every process taking
part, the shared objects and functions it spends it in, and the wall time of each SMTP
phase of one unloaded session.

  python3 bench/profile.py --build build-release --out build/profile \
      [--setups opensmtpd-adapter,opensmtpd-gate,opensmtpd-stock,exim-module,exim-stock,haraka-plugin,
                haraka-plain,amtpd-maildir20,amtpd-sessions,tls-baseline] \
      [--secs 15] [--phase-sessions 40] [--call-graph dwarf,16384]

Run as root (the MTAs need it; perf records the whole machine) with perf
(Debian: linux-perf) on PATH; build the targets tools/bench builds first. The
OpenSMTPD setups need smtpd 7.4 unpacked by bench/install-deps.

Method, per setup: start the server exactly as figure 3 does (bench/peer_mtas.py:
the adapter's own starter, the gate without the filter, stock smtpd 7.4, Exim with
and without the module, Haraka with the plugin and with Node's own client-certificate
TLS instead) or amtpd as figure 2 does; then, while figure 3's load runs
(amtp-bench --mode mail, 10 sessions, one 10 KB message per mutual-TLS session from 8
addresses) or figure 2's (--mode message, 20 sessions), `perf record -a -e cpu-clock
-F 999 -g` samples every CPU. Each sample is charged to the process it hit, named from
/proc/PID/cmdline (sampled every 50 ms during the window, so long-lived processes and
most short-lived ones are named by what they run; the rest by their comm). The sum
of the samples' periods is CPU time, exact up to sampling error, and includes
processes too short-lived for /proc accounting (smtpd's mda, Exim's connection and
delivery children). Divided by the messages delivered in the window: CPU ms per
message. cpu-clock samples only on-CPU time: time spent waiting for fsync shows up
in the phase timings, not in the CPU table.

Figure 1 (amtpd-sessions, tls-baseline): figure 1's load, amtp-bench -c 20 from 8
addresses, --mode session (TLS, greeting, EHLO with the PTR verdict, QUIT) against
amtpd, --mode tls (the handshake alone) against tls-baseline (no tickets) and, for
tls-baseline-tickets, --mode tls --wait-close against tls-baseline making amtpd's
tickets (figure 1b's bare full handshakes); CPU per completed session. With --call-graph dwarf,16384, --inclusive on amtpd or
tls-baseline uses FIGURE1_CATEGORIES (the handshake's ECDHE, signature and chain
verification, the ticket, the AMTP dialogue, the PTR verdict, logging, allocation).

Phase timings: after the load, --phase-sessions sessions one after another (no other
load from here), each timed per step: TCP connect + TLS handshake + greeting, EHLO,
MAIL, RCPT, DATA (354), the message up to its 250, QUIT. Medians.

--syscalls (amtpd-maildir20, opensmtpd-adapter, opensmtpd-gate): a second window of
the same load under `perf trace -s -p` (amtpd; for OpenSMTPD smtpd's dispatcher and
lookup processes and the gate): system calls per message, with the time inside them;
--trace-size sets that window's message size (OpenSMTPD), to see what scales with
the message's lines.
Tracing slows the server several-fold: the counts hold, the times are inflated;
--trace-events fsync,fdatasync traces those only and slows it much less.

--call-graph dwarf,16384: user-space call chains through code without frame
pointers (Debian's Exim, GnuTLS, OpenSSL), at 499 samples/s; then

  perf script -i OUT/SETUP.perf.data --comms COMM -F comm,pid,period,ip,sym,dso > S.txt
  python3 bench/profile.py --inclusive S.txt COMM MESSAGES

gives, per message, the CPU whose call chain passes through each of CATEGORIES (the
Exim module's entry points, libunbound, OpenSSL's verification, the dynamic linker,
the kernel's fork, exit, page faults, inode allocation, fsync, ...; they overlap).
--inclusive also takes a perf.data file (it runs that perf script itself).

Writes OUT/SETUP.perf.data, OUT/SETUP.txt (the report) and OUT/profile.json.
docs/PERFORMANCE.md ("Profiles") has the results and how they were made."""

import argparse
import collections
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import amtp_world  # noqa: E402
from amtp_world import World, WireSession  # noqa: E402
import peer_mtas  # noqa: E402
from run import run_json  # noqa: E402

SETUPS = ["opensmtpd-adapter", "opensmtpd-gate", "opensmtpd-stock", "exim-module", "exim-stock", "haraka-plugin",
          "haraka-plain", "amtpd-maildir20", "amtpd-sessions", "tls-baseline", "tls-baseline-tickets"]
FIGURE1 = ("amtpd-sessions", "tls-baseline", "tls-baseline-tickets")


class Names(threading.Thread):
    """pid -> a name for what the process runs, from /proc, sampled until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.names = {}
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            for entry in os.listdir("/proc"):
                if not entry.isdigit() or int(entry) in self.names:
                    continue
                try:
                    with open("/proc/%s/cmdline" % entry, "rb") as f:
                        argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
                except OSError:
                    continue
                if argv:
                    self.names[int(entry)] = argv
            self.stopping.wait(0.05)

    def stop(self):
        self.stopping.set()
        self.join()


def label(pid, comm, names, roles):
    """The row a sample is charged to."""
    if pid in roles:
        return roles[pid]
    argv = names.get(pid)
    first = argv[0] if argv else ""
    base = os.path.basename(first.split(":")[0].split()[0]) if first.strip() else ""
    # A process that exec'd after its name was taken (sh -c running the mda) has the
    # comm of what it runs now: then the comm decides.
    if argv and base[:15] == comm:
        if base == "smtpd" and ":" in first:  # smtpd's processes name their role
            return "smtpd: " + first.split(":", 1)[1].strip().split("[")[0].strip()
        if base in ("sh", "bash") and len(argv) > 2 and "mail.mda" not in argv[0]:
            return base + " (" + os.path.basename(argv[-1].split()[0]) + ")" if argv[-1] else base
        if base == "exim4":
            if "-bdf" in argv:  # a child forked by the daemon: an SMTP connection and its delivery
                return "exim4 (forked child)"
            return "exim4 " + " ".join(a for a in argv[1:] if a.startswith("-") and not a.startswith("-C"))[:30]
        return base
    if comm == "amtp-opensmtpd-":
        return "amtp-opensmtpd-deliver"  # the gate and the filter are long-lived: named above
    if comm == "exim4":
        return "exim4 (forked child)"
    if comm == "smtpd":
        return "smtpd (forked child)"
    return comm


SAMPLE = re.compile(r"^\s*(.*?)\s+(\d+)\s+(\d+)\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def analyse(data, names, roles, messages, interesting):
    """Per-row CPU, and for the interesting rows the shared objects and symbols."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,pid,period,ip,sym,dso", "-G"],
                         capture_output=True, text=True)
    cpu = collections.Counter()
    dsos = collections.defaultdict(collections.Counter)
    syms = collections.defaultdict(collections.Counter)
    for line in out.stdout.splitlines():
        m = SAMPLE.match(line)
        if not m:
            continue
        comm, pid, period, _ip, sym, dso = m.groups()
        row = label(int(pid), comm, names, roles)
        ns = int(period)
        cpu[row] += ns
        dso = os.path.basename(dso) or "?"
        dsos[row][dso] += ns
        syms[row][(sym.split("+0x")[0] or "?") + "  [" + dso + "]"] += ns
    whole_dso = collections.Counter()
    whole_sym = collections.Counter()
    for row in cpu:
        if server_row(row):
            whole_dso.update(dsos[row])
            whole_sym.update(syms[row])
    per = (lambda ns: round(ns / 1e6 / messages, 3)) if messages else (lambda ns: None)
    server = {"dso_ms_per_message": [(d, per(v)) for d, v in whole_dso.most_common(15)],
              "symbols_ms_per_message": [(x, per(v)) for x, v in whole_sym.most_common(30)]}
    rows = []
    for row, ns in cpu.most_common():
        rows.append({"process": row, "cpu_s": round(ns / 1e9, 3),
                     "cpu_ms_per_message": round(ns / 1e6 / messages, 3) if messages else None})
    detail = {}
    for row in cpu:
        if interesting(row):
            total = cpu[row]
            detail[row] = {
                "dso": [(d, round(100.0 * v / total, 1)) for d, v in dsos[row].most_common(12)],
                "symbols": [(s, round(100.0 * v / total, 1)) for s, v in syms[row].most_common(25)],
            }
    return rows, detail, server


def phases(world, port, carrier, n, rcpt):
    """Wall time (ms) of each step of n sessions one after another."""
    body = ("AMTP-MPC: per/individual\r\n" if carrier == "header" else "") + "Subject: phase\r\n\r\n"
    while len(body) + 78 < 10240:
        body += "x" * 76 + "\r\n"
    body += ".\r\n"
    mpc = " MPC=per/individual" if carrier == "parameter" else ""
    steps = collections.defaultdict(list)
    failures = []
    for i in range(n):
        source = world.extra_sources[i % len(world.extra_sources)] if world.extra_sources else "127.0.0.2"
        t = time.perf_counter()
        try:
            s = WireSession(world, "client", source, port)
            t1 = time.perf_counter()
            steps["connect+TLS+greeting"].append(t1 - t)
            for name, text, code in (("EHLO", "EHLO mx.a.test", "250"), ("MAIL", "MAIL FROM:<bench@a.test>" + mpc, "250"),
                                     ("RCPT", "RCPT TO:<%s@b.test>" % rcpt, "250"), ("DATA", "DATA", "354")):
                t0 = time.perf_counter()
                r = s.cmd(text)
                steps[name].append(time.perf_counter() - t0)
                if not r.startswith(code):
                    raise RuntimeError("%s: %s" % (name, r))
            t0 = time.perf_counter()
            s.send_raw(body.encode())
            r = s.reply()
            steps["message .. 250"].append(time.perf_counter() - t0)
            if not r.startswith("250"):
                raise RuntimeError("end of DATA: %s" % r)
            t0 = time.perf_counter()
            s.cmd("QUIT")
            steps["QUIT"].append(time.perf_counter() - t0)
            steps["whole session"].append(time.perf_counter() - t)
            s.close()
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            failures.append(str(e))
    return {k: round(1000 * statistics.median(v), 2) for k, v in steps.items()}, failures[:3]


def perf_record(data, pids=None, call_graph="fp"):
    cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "999" if call_graph == "fp" else "499",
           "--call-graph", call_graph, "-o", data]
    cmd += ["-p", ",".join(map(str, pids))] if pids else ["-a"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # perf attaches
    return p


def perf_stop(p):
    p.send_signal(signal.SIGINT)
    p.wait(timeout=120)


def roles_of(world):
    """The long-lived processes of the front-end's session, named by their role."""
    roles = {}
    for pid in amtp_world.session_pids(world.frontend_proc.pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = [a.decode() for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == "exim4" and "-bdf" in argv:
            roles[pid] = "exim4 daemon"
    return roles


def one_setup(setup, args, log):
    build = os.path.abspath(args.build)
    bench = os.path.join(build, "bin", "amtp-bench")
    frontend = setup.split("-")[0]
    frontend = "standalone" if frontend in ("amtpd", "tls") else frontend
    tickets = setup == "tls-baseline-tickets"
    world = World(frontend, build, extra_sources=8, limits=peer_mtas.LIMITS,
                  **({"bench_ptrs": 1000} if frontend == "standalone" else {}))
    amtp_world.ARGS = argparse.Namespace(frontend=frontend)
    smtpd74 = peer_mtas.opensmtpd74()
    baseline = None
    try:
        world.start_dns()
        if setup == "opensmtpd-adapter":
            peer_mtas.start_opensmtpd_adapter(world, smtpd74)
            carrier = "parameter"
        elif setup == "opensmtpd-gate":
            peer_mtas.start_opensmtpd_without_filter(world, smtpd74)
            carrier = "none"
        elif setup == "opensmtpd-stock":
            if not smtpd74:
                raise RuntimeError("smtpd 7.4 is not unpacked (bench/install-deps)")
            peer_mtas.start_stock_smtpd(world, smtpd74, "stock-smtpd")
            carrier = "none"
        elif setup == "exim-module":
            world.start_frontend()
            carrier = "header"
        elif setup.startswith("tls-baseline"):
            world.start_frontend()  # its configuration and certificates; amtpd stays idle
            base_port = amtp_world.free_port()
            baseline = subprocess.Popen([os.path.join(build, "bin", "tls-baseline"), world.config,
                                         "127.0.0.3:%d" % base_port] + (["tickets"] if tickets else []),
                                        stdout=subprocess.PIPE, text=True)
            baseline.stdout.readline()
            carrier = "parameter"
        elif setup == "exim-stock":
            world.config = world.site_config()  # amtp-exim-config derives Exim's configuration from it
            peer_mtas.start_stock_exim(world, build)
            carrier = "none"
        elif setup == "haraka-plain":
            world.config = world.site_config()  # haraka-config.js derives Haraka's configuration from it
            peer_mtas.start_haraka_plain(world, build)
            carrier = "none"
        else:
            world.start_frontend()
            carrier = "parameter"
        mailbox = "stock-smtpd" if setup == "opensmtpd-stock" else ("without-adapter" if setup in ("exim-stock", "haraka-plain")
                                                                    else "profile")
        if setup not in ("exim-stock", "opensmtpd-stock"):  # there the starters make it, with its owner
            world.add_mailbox(mailbox)
        if setup not in ("amtpd-maildir20", "exim-stock") + FIGURE1:
            world.add_mailbox("phase")
        target = "127.0.0.3:%d" % (base_port if setup.startswith("tls-baseline") else world.public_port)
        client = ["--cert", world.p("client.chain.pem"), "--key", world.p("client.key"),
                  "--sources", ",".join(world.extra_sources)]
        roles = roles_of(world)
        names = Names()
        names.start()
        data = os.path.join(args.out, setup + ".perf.data")
        rec = perf_record(data, call_graph=args.call_graph)
        t0 = time.time()
        if setup in FIGURE1:  # figure 1's load: sessions (or handshakes), counted as "delivered"
            r = run_json([bench, "--mode", "session" if setup == "amtpd-sessions" else "tls", "-c", "20", "-s",
                          str(args.secs), "--target", target] + (["--wait-close"] if tickets else []) + client,
                         args.secs + 90)
            load = {"acknowledged": r.get("completed", 0), "delivered": r.get("completed", 0),
                    "window_s": r.get("seconds", args.secs), "drain_s": 0.0, "errors": r.get("errors", 0),
                    "rate": r.get("rate", 0)}
        elif setup == "amtpd-maildir20":
            r = run_json([bench, "--mode", "message", "-c", "20", "-s", str(args.secs), "--rcpt",
                          "%s@b.test" % mailbox, "--target", target] + client, args.secs + 90)
            load = {"acknowledged": r.get("completed", 0), "delivered": r.get("completed", 0),
                    "window_s": r.get("seconds", args.secs), "drain_s": 0.0, "errors": r.get("errors", 0),
                    "rate": r.get("rate", 0)}
        else:
            load = peer_mtas.Load(bench, client, args.secs, run_json).run(world, target, mailbox, carrier)
        perf_stop(rec)
        wall = time.time() - t0
        names.stop()
        for pid in roles_of(world):
            names.names.pop(pid, None)
        log("  %s: %s" % (setup, {k: load[k] for k in ("acknowledged", "delivered", "rate", "errors")}))
        delivered = load["delivered"]

        def interesting(row):
            return row.startswith(("amtp-opensmtpd", "smtpd", "exim4", "amtpd", "mail.", "tls-baseline"))
        rows, detail, server = analyse(data, names.names, roles, delivered, interesting)
        phase, failures = ({}, [])
        if setup not in ("amtpd-maildir20",) + FIGURE1 and args.phase_sessions:
            if setup == "exim-stock":
                world.add_mailbox("phase")
                user = peer_mtas.pwd.getpwnam("Debian-exim")
                d = os.path.join(world.maildir, "b.test", "phase")
                for path in [d] + [os.path.join(d, s) for s in ("new", "cur", "tmp")]:
                    if os.path.isdir(path):
                        os.chown(path, user.pw_uid, user.pw_gid)
            if setup == "opensmtpd-stock":
                # stock smtpd's userbase knows the benchmark's one mailbox only
                phase, failures = phases(world, world.public_port, carrier, args.phase_sessions, "stock-smtpd")
            else:
                phase, failures = phases(world, world.public_port, carrier, args.phase_sessions, "phase")
        syscalls = None
        if args.syscalls and setup in ("amtpd-maildir20", "opensmtpd-adapter", "opensmtpd-gate"):
            syscalls = trace_syscalls(world, bench, target, mailbox, client, args, log, setup, carrier)
        return {"setup": setup, "load": load, "syscalls": syscalls, "record_wall_s": round(wall, 1), "processes": rows, "server": server, "detail": detail,
                "phases_ms": phase, "phase_failures": failures}
    finally:
        if baseline is not None:
            baseline.terminate()
            baseline.wait(timeout=30)
        world.stop()
        world.cleanup()


def server_row(row):
    """Rows that belong to the server under test (not the load generator, the DNS
    server, perf, or the machine's other work)."""
    return row.startswith(("amtp-opensmtpd", "smtpd", "mail.", "sh (mail.mda)", "sh (amtp-opensmtpd", "exim4",
                           "amtpd", "tls-baseline", "node", "libuv-worker"))


def trace_syscalls(world, bench, target, mailbox, client, args, log, setup, carrier):
    """A second window of the setup's load under `perf trace -s -p PIDS`: every thread's
    system calls, how many and how long (wall time inside the call, so fsync's wait
    for the disk counts), summed over the threads, per delivered message. PIDS: amtpd;
    for OpenSMTPD the long-lived processes of the filter protocol's path (smtpd's
    dispatcher and lookup processes, the filter, the gate)."""
    out = os.path.join(args.out, setup + ".syscalls.txt")
    if setup == "amtpd-maildir20":
        pids = [world.frontend_proc.pid]
    else:
        pids = []
        for pid in amtp_world.session_pids(world.frontend_proc.pid):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    first = f.read().split(b"\0")[0].decode("utf-8", "replace")
            except OSError:
                continue
            if first.startswith(("smtpd: dispatcher", "smtpd: lookup")) or "amtp-opensmtpd-filter" in first \
                    or "amtp-opensmtpd-gate" in first:
                pids.append(pid)
    events = ["-e", args.trace_events] if args.trace_events else []
    tr = subprocess.Popen(["perf", "trace", "-s", "-o", out, "-p", ",".join(map(str, pids))] + events,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    if setup == "amtpd-maildir20":
        r = run_json([bench, "--mode", "message", "-c", "20", "-s", str(args.secs), "--rcpt",
                      "%s@b.test" % mailbox, "--target", target] + client, args.secs + 90)
    else:
        r = run_json([bench, "--mode", "mail", "--carrier", carrier, "-c", str(peer_mtas.CONCURRENCY), "-s",
                      str(args.secs), "--size", str(args.trace_size), "--rcpt", "%s@b.test" % mailbox,
                      "--target", target] + client, args.secs + 90)
    tr.send_signal(signal.SIGINT)
    tr.wait(timeout=60)
    n = r.get("completed", 0)
    log("  under perf trace: %d messages, %.1f/s" % (n, r.get("rate", 0)))
    calls = collections.Counter()
    msec = collections.Counter()
    threads = 0
    names = {}
    for pid in pids:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                first = f.read().split(b"\0")[0].decode("utf-8", "replace")
            names[pid] = os.path.basename(first.split()[0]) if not first.startswith("smtpd:") else first.split("[")[0]
        except OSError:
            pass
    who = ""
    with open(out) as f:
        for line in f:
            t = re.match(r"^\s+(\S+) \((\d+)\), \d+ events", line)
            if t:
                threads += 1
                who = names.get(int(t.group(2)), t.group(1)) if setup != "amtpd-maildir20" else ""
            m = re.match(r"^\s+(\w+)\s+(\d+)\s+(\d+)\s+([0-9.]+)\s", line)
            if m:
                key = (who.strip() + ": " if who else "") + m.group(1)
                calls[key] += int(m.group(2))
                msec[key] += float(m.group(4))
    return {"messages": n, "rate": r.get("rate", 0), "threads": threads, "window_s": r.get("seconds", args.secs),
            "per_message": [(c, round(calls[c] / n, 2) if n else None, round(msec[c] / n, 3) if n else None)
                            for c, _ in calls.most_common(20)]}


# Inclusive time (a sample counts once for a category if any frame of its call chain
# matches): what a subsystem costs with everything it calls.
CATEGORIES = [
    ("the AMTP module: any frame in amtp_exim.so", lambda f: f[1] == "amtp_exim.so"),
    ("  amtp_init (module set-up)", lambda f: f[0] == "amtp_init"),
    ("  amtp_cert (tls:cert event)", lambda f: f[0] == "amtp_cert"),
    ("  amtp_ehlo (PTR verdict, the core's chain verification)", lambda f: f[0] == "amtp_ehlo"),
    ("  amtp_mail / amtp_rcpt", lambda f: f[0] in ("amtp_mail", "amtp_rcpt")),
    ("  amtp_data / amtp_trace", lambda f: f[0] in ("amtp_data", "amtp_trace")),
    ("libunbound (any frame)", lambda f: f[1].startswith("libunbound")),
    ("  ub_ctx_create", lambda f: f[0] == "ub_ctx_create"),
    ("OpenSSL libcrypto/libssl (any frame)", lambda f: f[1].startswith(("libcrypto", "libssl"))),
    ("  X509_verify_cert", lambda f: f[0] == "X509_verify_cert"),
    ("  OPENSSL_init_crypto / OPENSSL_init_ssl", lambda f: f[0] in ("OPENSSL_init_crypto", "OPENSSL_init_ssl")),
    ("GnuTLS (any frame in libgnutls)", lambda f: f[1].startswith("libgnutls")),
    ("dynamic loading: dlopen (_dl_open)", lambda f: f[0] in ("_dl_open", "dlopen", "___dlopen", "dlopen@@GLIBC_2.34")),
    ("dynamic linker, any frame (ld-linux)", lambda f: f[1].startswith("ld-linux")),
    ("kernel: fork (kernel_clone)", lambda f: f[0] == "kernel_clone"),
    ("kernel: process exit (do_exit)", lambda f: f[0] == "do_exit"),
    ("kernel: execve", lambda f: f[0] in ("do_execveat_common", "__x64_sys_execve")),
    ("kernel: page faults (exc_page_fault)", lambda f: f[0] == "exc_page_fault"),
    ("kernel: ext4 inode allocation (__ext4_new_inode)", lambda f: f[0] == "__ext4_new_inode"),
    ("kernel: fsync (ext4_sync_file)", lambda f: f[0] == "ext4_sync_file"),
    ("kernel: unlink (do_unlinkat)", lambda f: f[0] == "do_unlinkat"),
    ("kernel: rename (do_renameat2)", lambda f: f[0] == "do_renameat2"),
    ("kernel: open/create (do_sys_openat2)", lambda f: f[0] == "do_sys_openat2"),
    ("kernel: mkdir (do_mkdirat)", lambda f: f[0] == "do_mkdirat"),
    ("kernel: link (do_linkat)", lambda f: f[0] == "do_linkat"),
    ("kernel: write (vfs_write)", lambda f: f[0] == "vfs_write"),
    ("kernel: TCP send (tcp_sendmsg)", lambda f: f[0] == "tcp_sendmsg"),
    ("kernel: TCP receive (tcp_recvmsg)", lambda f: f[0] == "tcp_recvmsg"),
    ("kernel: futex", lambda f: f[0] == "do_futex"),
    ("kernel: epoll", lambda f: f[0] in ("do_epoll_wait", "do_epoll_ctl")),
    ("kernel: directory lock spinning (rwsem_spin_on_owner)", lambda f: f[0] == "rwsem_spin_on_owner"),
    ("kernel, any frame", lambda f: f[1] == "[kernel.kallsyms]"),
]


def _has(*parts):
    return lambda f: any(p in f[0] for p in parts)


def _chain(test):
    """A category decided on the whole call chain (a list of (symbol, dso), leaf first)."""
    test.chain = True
    return test


def _any(chain, *parts):
    return any(p in f[0] for f in chain for p in parts)


def _handshake(chain):
    # amtpd's handshake (TlsSocket::handshake_step), Asio's for tls-baseline
    return _any(chain, "TlsSocket::handshake_step", "engine::handshake", "engine::do_accept", "SSL_do_handshake")


def _ours(chain):
    return _any(chain, "TrustStore::verify_client", "handshake_identity", "make_ticket")


# Figure 1: amtpd's sessions and tls-baseline's handshakes. Debian's libssl names few
# of its functions (its internal ones are [unknown]), so the handshake is split by
# the exported libcrypto entry points its steps call. A category counts a sample once
# if its chain matches; categories overlap.
FIGURE1_CATEGORIES = [
    ("TLS handshake (TlsSocket::handshake_step; Asio's engine in tls-baseline)", _chain(_handshake)),
    ("  ECDHE: key generation (EVP_PKEY_generate/keygen)",
     _chain(lambda c: _handshake(c) and _any(c, "EVP_PKEY_generate", "EVP_PKEY_keygen"))),
    ("  ECDHE: shared secret (EVP_PKEY_derive)", _chain(lambda c: _handshake(c) and _any(c, "EVP_PKEY_derive"))),
    ("  server's signature (EVP_DigestSign*)", _chain(lambda c: _handshake(c) and _any(c, "EVP_DigestSign"))),
    ("  client's CertificateVerify checked (EVP_DigestVerify*, not in a chain check)",
     _chain(lambda c: _handshake(c) and _any(c, "EVP_DigestVerify") and not _any(c, "X509_verify_cert"))),
    ("  chain verification inside the handshake (X509_verify_cert from libssl)",
     _chain(lambda c: _handshake(c) and _any(c, "X509_verify_cert") and not _ours(c))),
    ("  the client's certificates decoded (d2i_X509*, X509_free)",
     _chain(lambda c: _handshake(c) and _any(c, "d2i_X509", "X509_free") and not _any(c, "X509_verify_cert"))),
    ("  ticket: amtpd's make_ticket (identity checked and encoded)", _chain(lambda c: _any(c, "make_ticket"))),
    ("  ticket: the session serialised (i2d_SSL_SESSION)", _chain(lambda c: _any(c, "i2d_SSL_SESSION"))),
    ("  ticket: the session parsed back (d2i_SSL_SESSION; OpenSSL's stateless ticket re-reads the session it "
     "serialised, the client's certificate included; resumed: also the offered ticket)",
     _chain(lambda c: _handshake(c) and _any(c, "d2i_SSL_SESSION"))),
    ("  ticket, all of it (the three above, SSL_SESSION_free, the ticket's cipher and HMAC)",
     _chain(lambda c: _handshake(c) and (_any(c, "make_ticket", "i2d_SSL_SESSION", "d2i_SSL_SESSION",
                                              "SSL_SESSION_free", "ticket_key_callback") or
                                         (_any(c, "EVP_EncryptUpdate", "EVP_EncryptFinal", "HMAC_Init_ex", "HMAC_Update",
                                                   "HMAC_Final", "HMAC_CTX", "EVP_DecryptUpdate")
                                          and not _any(c, "SSL_write", "SSL_read"))))),
    ("our chain verification (TrustStore::verify_client, cache included)",
     _chain(lambda c: _any(c, "TrustStore::verify_client"))),
    ("  the verification cache (VerificationCache::*)", _chain(lambda c: _any(c, "VerificationCache::"))),
    ("handshake_identity (the identity after the handshake)", _chain(lambda c: _any(c, "handshake_identity"))),
    ("AMTP dialogue: records out (TlsSocket::write_step, SSL_write)",
     _chain(lambda c: _any(c, "TlsSocket::write_step", "SSL_write"))),
    ("AMTP dialogue: records in (TlsSocket::read_step, SSL_read)",
     _chain(lambda c: _any(c, "TlsSocket::read_step", "SSL_read"))),
    ("AMTP dialogue: the core's session (ServerSession::*, Rulebook, replies)",
     _chain(lambda c: _any(c, "amtp::ServerSession::", "amtp::Rulebook::", "amtp::make_reply", "amtp::Reply::"))),
    ("PTR verdict: lookup_client_names, Resolver, libunbound (its thread included)",
     _chain(lambda c: _any(c, "lookup_client_names", "amtp::Resolver", "DnsPump") or
            any(f[1].startswith("libunbound") for f in c))),
    ("logging (LogLine, log_to_stderr, printable)", _chain(lambda c: _any(c, "LogLine", "log_to_stderr",
                                                                       "amtp::printable"))),
    ("connection set-up and teardown (accept, TlsSocket ctor/close, SSL_free, Connection::finish)",
     _chain(lambda c: _any(c, "Server::accept", "TlsSocket::TlsSocket", "TlsSocket::close", "SSL_free",
                           "Connection::finish", "Connection::Connection", "async_accept", "reactive_socket_accept",
                           "~stream", "SSL_new"))),
    ("allocation (malloc, free, operator new/delete), everywhere",
     lambda f: f[0] in ("malloc", "free", "cfree", "_int_malloc", "_int_free", "realloc", "calloc",
                        "malloc_consolidate", "_int_realloc", "unlink_chunk.constprop.0")
     or f[0].startswith(("operator new", "operator delete", "cfree@", "__libc_malloc", "__libc_free"))),
    ("kernel: TCP send (tcp_sendmsg)", lambda f: f[0] == "tcp_sendmsg"),
    ("kernel: TCP receive (tcp_recvmsg)", lambda f: f[0] == "tcp_recvmsg"),
    ("kernel: epoll", lambda f: f[0] in ("do_epoll_wait", "do_epoll_ctl")),
    ("kernel, any frame", lambda f: f[1] == "[kernel.kallsyms]"),
    ("libcrypto/libssl, any frame", lambda f: f[1].startswith(("libcrypto", "libssl"))),
]


def inclusive(data, comm, messages):
    """Per category of CATEGORIES (FIGURE1_CATEGORIES for amtpd and tls-baseline): ms
    per message (figure 1: per session) of `comm`'s samples whose chain passes through it."""
    categories = FIGURE1_CATEGORIES if comm in ("amtpd", "tls-baseline") else CATEGORIES
    if data.endswith(".txt"):  # the output of that perf script, kept
        with open(data) as f:
            out = argparse.Namespace(stdout=f.read())
    else:
        out = subprocess.run(["perf", "script", "-i", data, "--comms", comm, "-F", "comm,pid,period,ip,sym,dso"],
                             capture_output=True, text=True)
    totals = collections.Counter()
    whole = 0

    def close(period, frames):
        nonlocal whole
        if period is None:
            return
        whole += period
        for name, match in categories:
            if match(frames) if getattr(match, "chain", False) else any(match(f) for f in frames):
                totals[name] += period
    period, frames = None, []
    for line in out.stdout.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            close(period, frames)
            if not line.startswith(comm):
                period, frames = None, []
                continue
            parts = line.split()
            period, frames = int(parts[2]), []
            continue
        m = re.match(r"^\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
        if m:
            frames.append((m.group(1).split("+0x")[0], os.path.basename(m.group(2))))
    close(period, frames)
    return {"comm": comm, "messages": messages, "cpu_ms_per_message": round(whole / 1e6 / messages, 3),
            "categories": [(n, round(totals[n] / 1e6 / messages, 3), round(100.0 * totals[n] / whole, 1) if whole
                            else 0.0) for n, _ in categories]}


def report(res):
    lines = ["setup %s: %d delivered in %.1f s (+%.2f s drain), %.1f messages/s, %d errors" % (
        res["setup"], res["load"]["delivered"], res["load"]["window_s"], res["load"]["drain_s"], res["load"]["rate"],
        res["load"]["errors"]), "  CPU per delivered message, by process (perf record -a, cpu-clock):"]
    server = [r for r in res["processes"] if server_row(r["process"])]
    total = sum(r["cpu_s"] for r in server)
    msgs = res["load"]["delivered"]
    lines.append("    %-40s %8.3f s  %8.3f ms/message" % ("the server's processes, all", total,
                                                         1000.0 * total / msgs if msgs else 0))
    for r in server + [r for r in res["processes"] if r["process"] in ("amtp-bench", "unbound", "perf")]:
        lines.append("    %-40s %8.3f s  %8.3f ms/message" % (r["process"][:40], r["cpu_s"],
                                                             r["cpu_ms_per_message"] or 0))
    lines.append("  the server's processes together, by shared object (ms/message): " + ", ".join(
        "%s %.3f" % x for x in res["server"]["dso_ms_per_message"]))
    lines.append("  the server's processes together, top symbols (ms/message):")
    for x, v in res["server"]["symbols_ms_per_message"][:20]:
        lines.append("      %7.3f  %s" % (v, x))
    for row, d in res["detail"].items():
        lines.append("  %s: shared objects: %s" % (row, ", ".join("%s %.1f%%" % x for x in d["dso"])))
        for s, pct in d["symbols"][:15]:
            lines.append("      %5.1f%%  %s" % (pct, s))
    if res.get("syscalls"):
        sc = res["syscalls"]
        lines.append("  system calls under perf trace -s (%d messages, %.1f/s, %d threads): per message, calls and "
                     "ms inside the call, summed over threads:" % (sc["messages"], sc["rate"], sc["threads"]))
        for c, k, ms in sc["per_message"]:
            lines.append("      %-16s %6.2f calls  %8.3f ms  (%.2f ms per call; %.2f in progress on average)" % (
                c, k, ms, ms / k if k else 0, ms * sc["messages"] / 1000.0 / sc["window_s"] if sc["window_s"] else 0))
    if res["phases_ms"]:
        lines.append("  phases, median ms of %s: %s" % ("sequential sessions", ", ".join(
            "%s %.2f" % kv for kv in res["phases_ms"].items())))
    if res["phase_failures"]:
        lines.append("  phase failures: %s" % res["phase_failures"])
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", help="the build tree (required unless --inclusive)")
    ap.add_argument("--out", help="where the perf data and reports go (required unless --inclusive)")
    ap.add_argument("--setups", default=",".join(SETUPS))
    ap.add_argument("--secs", type=int, default=15)
    ap.add_argument("--phase-sessions", type=int, default=40)
    ap.add_argument("--syscalls", action="store_true",
                    help="amtpd-maildir20: a second window under perf trace -s (system call counts and times)")
    ap.add_argument("--trace-events", default="",
                    help="the system calls to trace in the --syscalls window, e.g. fsync,fdatasync (default: "
                         "all; fewer slow the server less)")
    ap.add_argument("--trace-size", type=int, default=10240,
                    help="the message size in bytes of the OpenSMTPD --syscalls window (default 10240, as figure 3)")
    ap.add_argument("--call-graph", default="fp",
                    help="perf record --call-graph: fp (default), or dwarf,16384 for callers through code "
                         "built without frame pointers (then 499 samples/s: larger records)")
    ap.add_argument("--inclusive", nargs=3, metavar=("PERF_DATA", "COMM", "MESSAGES"),
                    help="only analyse: inclusive ms/message by category (see CATEGORIES) of COMM's samples "
                         "in PERF_DATA (recorded with --call-graph dwarf for user-space chains)")
    args = ap.parse_args()
    if args.inclusive:
        r = inclusive(args.inclusive[0], args.inclusive[1], int(args.inclusive[2]))
        print("%s: %.3f ms CPU per message; inclusive, per message and share:" % (r["comm"],
                                                                                r["cpu_ms_per_message"]))
        for name, ms, pct in r["categories"]:
            print("  %-64s %8.3f ms %6.1f%%" % (name, ms, pct))
        return
    if not args.build or not args.out:
        ap.error("--build and --out are required")
    os.makedirs(args.out, exist_ok=True)
    started = time.time()

    def log(text):
        print("[%5.0f s] %s" % (time.time() - started, text), flush=True)

    results = []
    for setup in args.setups.split(","):
        if setup not in SETUPS:
            sys.exit("unknown setup %s (one of %s)" % (setup, ", ".join(SETUPS)))
        log("setup %s" % setup)
        res = one_setup(setup, args, log)
        results.append(res)
        text = report(res)
        with open(os.path.join(args.out, setup + ".txt"), "w") as f:
            f.write(text + "\n")
        print(text, flush=True)
    with open(os.path.join(args.out, "profile.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
