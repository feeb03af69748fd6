# The inside of the installation test (tests/packaging/install-test): each front-end's
# script runs in a fresh Debian 12 root of its own (tools/fresh-root), installs the built
# packages from /usr/src/files with apt, sets up a site for its own domain, has the host
# deliver a message into it with the host's amtp-send, checks what the packages promise,
# then purges them and shows that nothing but what Debian policy keeps is left.
# /usr/src/share is the host's directory (AMTP_FRESH_SHARE): the test PKI, the DNS
# resolver's address, and the files by which the root and the host take turns.
# One front-end per root: Exim and OpenSMTPD are both MTAs and exclude each other.
# Sourced by each in-root-*.sh.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
here=$(cd "$(dirname "$0")" && pwd)
share=/usr/src/share
# No daemon may start from a maintainer script: the root shares the host's network.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
# A daemon a failed test leaves behind would keep the root (and its ports) busy.
pid=""
stop_daemons() { if [ -n "$pid" ]; then kill -9 $pid 2>/dev/null || true; fi; }
trap stop_daemons EXIT
cd /usr/src/files
ls ./libamtp0_*.deb >/dev/null || { echo "no packages in /usr/src/files: set AMTP_FRESH_FILES" >&2; exit 66; }
[ -f "$share/resolver" ] || { echo "no $share/resolver: run this from tests/packaging/install-test" >&2; exit 66; }
apt-get update -qq

# expect WHAT COMMAND...: COMMAND must succeed; say so, or fail the test naming WHAT.
expect() {
  local what=$1; shift
  if "$@"; then echo "  ok: $what"; else echo "  FAILED: $what" >&2; exit 1; fi
}

# What a purge must leave is compared with what was there before the packages went in:
# snapshot NAME lists the files outside the places that change by themselves (logs,
# apt's and dpkg's own state, the test's own directories, the MTA's spool).
snapshot() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
      -o -path /var/log -o -path /var/cache -o -path /var/lib/apt -o -path /var/lib/dpkg \
      -o -path /usr/src -o -path /root -o -path /var/spool/exim4 -o -path /var/lib/exim4 \
      -o -path /var/spool/smtpd -o -path /var/tmp \) -prune -o -print | sort >"/tmp/snapshot.$1"
}
# after_purge: the files the purge left, against snapshot "before"; only the user
# database may differ (Debian policy: a package's system users stay after a purge).
after_purge() {
  # What apt installed only for the packages goes too, as an operator removes it.
  apt-get autoremove --purge -y -qq >/dev/null
  snapshot after
  echo "== left after the purge, against the root before the packages were installed"
  diff /tmp/snapshot.before /tmp/snapshot.after | sed -n 's/^[<>] /  /p' >/tmp/purge.diff || true
  if [ -s /tmp/purge.diff ]; then sed 's/^/  /' /tmp/purge.diff; else echo "  nothing"; fi
  expect "nothing is left but the user database's backups" \
    sh -c '! grep -q -v -E "^  /etc/(passwd|group|shadow|gshadow)-$" /tmp/purge.diff'
  for user in "$@"; do
    expect "the system user $user stays (Debian policy)" getent passwd "$user"
  done
}

# install_site DOMAIN ADDRESS:PORT: /etc/amtp/amtp.ini, as an operator fills the installed
# template, for a site mx.DOMAIN listening on ADDRESS:PORT: the certificate the host's
# test CA issued for mx.DOMAIN, that CA as the one trusted, the host's DNS resolver.
install_site() {
  local domain=$1 listen=$2 host=mx.$1
  mkdir -p /etc/amtp/tls
  cp "$share/pki/$host.chain.pem" /etc/amtp/tls/chain.pem
  cp "$share/pki/$host.key" /etc/amtp/tls/key.pem
  cp "$share/pki/ca.pem" /etc/amtp/tls/ca.pem
  sed -i -e "s|^#hostname = .*|hostname = $host|" \
         -e "s|^public = 0.0.0.0:26|public = $listen|" \
         -e 's|^#certificate = |certificate = |' -e 's|^#key = |key = |' \
         -e 's|^trusted-ca = .*|trusted-ca = /etc/amtp/tls/ca.pem|' \
         -e "s|^#resolver = .*|resolver = $(cat "$share/resolver")|" \
         -e "s|^#local-domain = example.org|local-domain = $domain|" /etc/amtp/amtp.ini
  grep -E '^(hostname|public|certificate|key|trusted-ca|resolver|local-domain) =' /etc/amtp/amtp.ini | sed 's/^/  amtp.ini: /'
  # From here on, no name is looked up outside loopback: apt is done.
  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >/etc/resolv.conf
}

# deliver_from_host DOMAIN: the host sends alice@a.test -> bob@DOMAIN with its own
# amtp-send (MPC=per/individual) while this root's daemon runs; its exit status.
deliver_from_host() {
  local domain=$1
  echo "== the host's amtp-send: alice@a.test -> bob@$domain"
  : >"$share/$domain.ready"
  for _ in $(seq 1800); do [ -f "$share/$domain.sent" ] && break; sleep 0.1; done
  [ -f "$share/$domain.sent" ] || { echo "  the host did not send within 180 s" >&2; return 1; }
  sed 's/^/  host: /' "$share/$domain.send.log"
  return "$(cat "$share/$domain.sent")"
}

# delivered MAILDIR: the one message the host sent is in MAILDIR/new (within 10 s: a
# front-end may store it from its queue after the reply), with its MPC.
delivered() {
  for _ in $(seq 100); do compgen -G "$1/new/*" >/dev/null && break; sleep 0.1; done
  local files=("$1"/new/*)
  [ -f "${files[0]}" ] || { echo "  nothing in $1/new" >&2; return 1; }
  echo "  $1/new: ${#files[@]} message(s), $(stat -c '%U:%G %a' "${files[0]}")"
  tr -d '\r' <"${files[0]}" | sed -n '1,/^$/p' | sed 's/^/    /'
  grep -q '^Subject: installed' "${files[0]}" && grep -q '^MPC: per/individual' "${files[0]}"
}

# unit_value SERVICE KEY: KEY's value in the installed unit file SERVICE, its
# continuation lines joined.
unit_value() {
  sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' "/lib/systemd/system/$1" | sed -n "s/^$2=//p"
}

# as_unit SERVICE: unit_cmd, the command prefix that runs a program as the installed
# unit SERVICE runs it (setpriv): its User and Group, its capability bounding set and
# ambient capabilities, no new privileges; read from the unit file itself.
as_unit() {
  local user group bounding ambient
  user=$(unit_value "$1" User); group=$(unit_value "$1" Group)
  lower() { tr 'A-Z ' 'a-z,' | sed 's/cap_//g'; }
  ambient=$(unit_value "$1" AmbientCapabilities | lower)
  bounding=$(unit_value "$1" CapabilityBoundingSet | lower)
  unit_cmd=(setpriv)
  [ -z "$user" ] || unit_cmd+=(--reuid="$user" --init-groups)
  [ -z "$group" ] || unit_cmd+=(--regid="$group")
  [ "$(unit_value "$1" NoNewPrivileges)" != yes ] || unit_cmd+=(--no-new-privs)
  [ -z "$bounding" ] || unit_cmd+=(--bounding-set=-all,+"${bounding//,/,+}")
  [ -z "$ambient" ] || unit_cmd+=(--inh-caps=+"${ambient//,/,+}" --ambient-caps=+"${ambient//,/,+}")
}

# verify_unit SERVICE: systemd's own check of the installed unit file (with man-db in
# the root, it also finds the man pages of its Documentation= line).
verify_unit() {
  local status=0
  systemd-analyze verify "/lib/systemd/system/$1" >/tmp/verify.log 2>&1 || status=$?
  sed 's/^/  systemd-analyze: /' /tmp/verify.log
  expect "systemd-analyze verify $1: exit 0, nothing said" test "$status" = 0 -a ! -s /tmp/verify.log
}

# wait_port ADDRESS PORT: until something accepts there (5 s).
wait_port() {
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
