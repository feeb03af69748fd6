# Smoke tests of the Debian packages in a fresh Debian 12 root (docs/deploy.md):
#   tools/package
#   AMTP_FRESH_FILES=build/packages tools/fresh-root tests/packaging/smoke-amtpd.sh
#   AMTP_FRESH_FILES=build/packages tools/fresh-root tests/packaging/smoke-exim.sh
#   AMTP_FRESH_FILES=build/packages tools/fresh-root tests/packaging/smoke-opensmtpd.sh
# Each installs some of the packages from /usr/src/files (where fresh-root copies
# AMTP_FRESH_FILES), sets up a test site on a loopback address of its own and checks
# what the package promises; exit 0 when all of it held. One per root: Exim and
# OpenSMTPD are both MTAs and exclude each other. Sourced by each smoke-*.sh.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
here=$(cd "$(dirname "$0")" && pwd)
# No daemon may start from a maintainer script: the root shares the host's network.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
# A daemon a failed test leaves behind would keep the root (and its ports) busy.
pid=""
trap 'if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi' EXIT
cd /usr/src/files
ls ./libamtp0_*.deb >/dev/null || { echo "no packages in /usr/src/files: set AMTP_FRESH_FILES" >&2; exit 66; }
apt-get update -qq

# A site: a self-signed certificate for mx.b.test (its own CA), amtp.ini filled in
# from the installed template, the AMTP listener on ADDRESS:PORT.
make_site() {
  mkdir -p /etc/amtp/tls
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /etc/amtp/tls/key.pem \
    -out /etc/amtp/tls/chain.pem -days 30 -subj /CN=mx.b.test -addext subjectAltName=DNS:mx.b.test 2>/dev/null
  cp /etc/amtp/tls/chain.pem /etc/amtp/tls/ca.pem
  sed -i -e 's|^#hostname = .*|hostname = mx.b.test|' \
         -e "s|^public = 0.0.0.0:26|public = $1|" \
         -e 's|^#certificate = |certificate = |' -e 's|^#key = |key = |' \
         -e 's|^trusted-ca = .*|trusted-ca = /etc/amtp/tls/ca.pem|' \
         -e 's|^#resolver = .*|resolver = 127.0.0.1@15353|' \
         -e 's|^#local-domain = example.org|local-domain = b.test|' /etc/amtp/amtp.ini
}

# expect WHAT COMMAND...: COMMAND must succeed; say so, or fail the test naming WHAT.
expect() {
  local what=$1; shift
  if "$@"; then echo "  ok: $what"; else echo "  FAILED: $what" >&2; exit 1; fi
}
