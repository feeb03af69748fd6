#!/bin/bash
# The Haraka plugin's npm package in a fresh Debian 12 root, with the Debian packages of
# the core (tests/packaging/haraka.sh does the installing):
#   tools/package
#   AMTP_FRESH_FILES=build/packages tools/fresh-root 'bash tests/packaging/haraka-try.sh'
# Installs libamtp0, libamtp-dev, amtp-common, Node 22 and Haraka 3 (haraka_install),
# then, with no name resolution left but loopback, makes a Haraka instance in
# /srv/haraka with haraka-plugin-amtp-*.tgz npm-installed there (the addon built against
# the installed libamtp), starts Haraka as user amtp on 127.0.0.81:26 and checks that the
# plugin loaded and answers: TLS on connect, the plugin's 220 and EHLO refusal without a
# client certificate, the certificate reaching the core with one. Stand-alone: a
# self-signed certificate, no DNS server (the PTR lookup fails: 451 4.4.3).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
here=$(cd "$(dirname "$0")" && pwd)
# No daemon may start from a maintainer script: the root shares the host's network.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
pid=""
trap 'if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi' EXIT
. "$here/haraka.sh"
expect() {
  local what=$1; shift
  if "$@"; then echo "  ok: $what"; else echo "  FAILED: $what" >&2; exit 1; fi
}
ls /usr/src/files/libamtp0_*.deb >/dev/null || { echo "no packages in /usr/src/files: set AMTP_FRESH_FILES" >&2; exit 66; }

echo "== install"
haraka_install
echo "== pkg-config: amtp $(pkg-config --modversion amtp)"
echo "== a site mx.b.test on 127.0.0.81:26 (self-signed, its own CA), no DNS beyond loopback"
mkdir -p /etc/amtp/tls
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /etc/amtp/tls/key.pem \
  -out /etc/amtp/tls/chain.pem -days 30 -subj /CN=mx.b.test -addext subjectAltName=DNS:mx.b.test 2>/dev/null
cp /etc/amtp/tls/chain.pem /etc/amtp/tls/ca.pem
sed -i -e 's|^#hostname = .*|hostname = mx.b.test|' -e 's|^public = 0.0.0.0:26|public = 127.0.0.81:26|' \
       -e 's|^#certificate = |certificate = |' -e 's|^#key = |key = |' \
       -e 's|^trusted-ca = .*|trusted-ca = /etc/amtp/tls/ca.pem|' \
       -e 's|^#resolver = .*|resolver = 127.0.0.1@15353|' \
       -e 's|^#local-domain = example.org|local-domain = b.test|' /etc/amtp/amtp.ini
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >/etc/resolv.conf
echo "== Haraka in /srv/haraka"
haraka_setup /srv/haraka 127.0.0.81 26
addon=/srv/haraka/node_modules/haraka-plugin-amtp/build/Release/amtp.node
ldd "$addon" | grep amtp | sed 's/^/  /'
expect "the addon links the installed libamtp" grep -q "libamtp.so.0 => /\(usr/\)\?lib/x86_64-linux-gnu/libamtp.so.0" <(ldd "$addon")
echo "== Haraka started as amtp"
haraka_start /srv/haraka
expect "Haraka runs as amtp" grep -q "^Uid:[[:space:]]*$(id -u amtp)[[:space:]]" /proc/$pid/status
cd /etc/amtp/tls
(printf 'EHLO client.test\r\n'; sleep 1; printf 'QUIT\r\n'; sleep 1) |
  timeout 10 openssl s_client -quiet -connect 127.0.0.81:26 -CAfile ca.pem 2>/dev/null | tee /tmp/without | sed 's/^/  without a certificate: /'
(printf 'EHLO mx.b.test\r\n'; sleep 2; printf 'QUIT\r\n'; sleep 1) |
  timeout 10 openssl s_client -quiet -connect 127.0.0.81:26 -cert chain.pem -key key.pem -CAfile ca.pem 2>/dev/null | tee /tmp/with | sed 's/^/  with a certificate: /'
expect "TLS on connect, then the greeting of mx.b.test" grep -q "^220 mx.b.test" /tmp/without
expect "no certificate: 504 5.7.1 from the plugin" grep -q "^504 5.7.1 Authentication failed" /tmp/without
expect "with the certificate: past the certificate, to the PTR check (no DNS here: 451 4.4.3)" grep -q "^451 4.4.3" /tmp/with
haraka_stop
expect "SIGTERM: Haraka exited 0" true
grep -E "amtp" "$haraka_log" | sed 's/^/  log: /' | cut -c1-220
expect "the plugin loaded, on /etc/amtp/amtp.ini" grep -q "amtp: configuration /etc/amtp/amtp.ini, hostname mx.b.test" "$haraka_log"
expect "the refusal logged by the core" grep -q "event=ehlo .*reason=no_client_cert" "$haraka_log"
echo "== Haraka with the AMTP npm package: passed"
