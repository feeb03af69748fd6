"""Exim 4.96 as an AMTP client (plugins/exim: SRV router, implicit-TLS transport with
the site certificate, the MPC by the AMTP-MPC header carrier), on its own configuration
generated from a.test's INI file. Used by the Exim suite and by the interop suite that
has Exim deliver to every other front-end."""

import os
import subprocess

import amtp_world

EXIM_ROOT = os.environ.get("AMTP_EXIM_ROOT", "/opt/amtp-exim")
EXIM = os.path.join(EXIM_ROOT, "usr/sbin/exim4")


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def open_path(path):
    """Exim drops to its own user: it must traverse every directory up to its work
    directory (a test's mkdtemp folder is 0700). Only the search bit is added."""
    d = os.path.abspath(path)
    while d != "/":
        mode = os.stat(d).st_mode
        if not mode & 0o001:
            os.chmod(d, mode | 0o001)
        d = os.path.dirname(d)


class EximClient:
    """One Exim configuration for a.test in its own spool, log and TLS directories."""

    def __init__(self, world, name, policy_xml):
        self.work = os.path.join(world.dir, "exim-" + name)
        for sub in ("spool", "log", "tls"):
            os.makedirs(os.path.join(self.work, sub), exist_ok=True)
        open_path(self.work)
        policy = world.write("policy-%s.xml" % name, policy_xml)
        with open(world.sender_config()) as f:
            ini = world.write("%s.ini" % name, f.read() + "[policy]\nfile = %s\n" % policy)
        key = os.path.join(self.work, "tls", "key.pem")
        subprocess.run(["install", "-o", "Debian-exim", "-m", "0600", world.p("client.key"), key], check=True)
        subprocess.run(["chown", "-R", "Debian-exim", os.path.join(self.work, "spool"),
                        os.path.join(self.work, "log")], check=True)
        self.conf = os.path.join(self.work, "exim.conf")
        r = subprocess.run([os.path.join(world.bin, "amtp-exim-config"), "--config", ini, "--module",
                            os.path.join(world.build_dir, "lib", "amtp_exim.so"), "--acl",
                            os.path.join(amtp_world.ROOT, "plugins", "exim", "amtp-acl.conf"), "--work",
                            self.work, "--tls-key", key, "--output", self.conf], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("amtp-exim-config failed: " + r.stderr)
        self.exim = EXIM

    def send(self, sender, rcpts, message, timeout=120):
        """Submits on the command line and delivers in the foreground (-odf): Exim's
        exit status says whether the delivery attempt finished."""
        return subprocess.run([self.exim, "-C", self.conf, "-odf", "-f", sender] + list(rcpts),
                              input=message, capture_output=True, timeout=timeout)

    def log(self):
        return read(os.path.join(self.work, "log", "mainlog"))
