#!/bin/bash
# The Haraka plugin's npm package in a fresh Debian 12 root, with the Debian packages of
# the core (tests/packaging/haraka.sh does the installing):
#   tools/package
#   AMTP_FRESH_FILES=build/packages tools/fresh-root 'bash tests/packaging/haraka-try.sh'
# Installs libamtp0, libamtp-dev, amtp-common, Node 22 and Haraka 3, makes a Haraka
# instance in /srv/haraka, npm-installs haraka-plugin-amtp-*.tgz there (the addon is built
# against the installed libamtp), starts Haraka as user amtp on 127.0.0.81:26 and checks
# that the plugin loaded and answers: TLS on connect, the plugin's 220 and EHLO refusal
# without a client certificate, the certificate reaching the core with one.
. "$(dirname "$0")/common.sh"
. "$here/haraka.sh"
echo "== install"
haraka_install
echo "== pkg-config"; pkg-config --modversion amtp
echo "== a site on 127.0.0.81:26, Haraka in /srv/haraka"
make_site 127.0.0.81:26
haraka_setup /srv/haraka 127.0.0.81 26
ls -l /srv/haraka/node_modules/haraka-plugin-amtp/build/Release/amtp.node | sed 's/^/  /'
ldd /srv/haraka/node_modules/haraka-plugin-amtp/build/Release/amtp.node | grep amtp | sed 's/^/  /'
expect "the addon links the installed libamtp" \
  grep -q "libamtp.so.0 => /lib/x86_64-linux-gnu/libamtp.so.0\|libamtp.so.0 => /usr/lib/x86_64-linux-gnu/libamtp.so.0" \
  <(ldd /srv/haraka/node_modules/haraka-plugin-amtp/build/Release/amtp.node)
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
