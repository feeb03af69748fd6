#!/bin/bash
# amtp-opensmtpd with Debian's opensmtpd: users, smtpd.conf from amtp-opensmtpd-conf
# accepted by smtpd -n, the gate started as its unit starts it (its bounding set,
# no new privileges) switching to amtpgate; purge.
. "$(dirname "$0")/common.sh"
apt-get install -y -qq --no-install-recommends ./libamtp0_*.deb ./amtp-common_*.deb ./amtp-opensmtpd_*.deb openssl >/dev/null
echo "== installed"; dpkg -l 'amtp*' 'libamtp*' 'opensmtpd*' | awk '/^ii/{print "  " $2, $3}'
echo "== users"; getent passwd amtpgate amtpmail | sed 's/^/  /'; id amtpgate | sed 's/^/  /'
echo "== tmpfiles.d"; cat /usr/lib/tmpfiles.d/amtp-opensmtpd.conf | sed 's/^/  /'
# No systemd in this root: make the directory as systemd-tmpfiles would.
install -d -o amtpgate -g opensmtpd -m 0750 /run/amtp-opensmtpd
echo "== a site on 127.0.0.80:52626"
make_site 127.0.0.80:52626
chmod 600 /etc/amtp/tls/key.pem
amtp-opensmtpd-conf -c /etc/amtp/amtp.ini --smtpd 127.0.0.1:10026 --socket /run/amtp-opensmtpd/gate.sock \
  --delivery-notices amtp-opensmtpd-notices --prepare-maildir -o /tmp/smtpd.conf
sed 's/^/  smtpd.conf: /' /tmp/smtpd.conf
smtpd -n -f /tmp/smtpd.conf 2>&1 | sed 's/^/  smtpd -n: /'
expect "smtpd accepts the generated lines" smtpd -n -f /tmp/smtpd.conf
stat -c '  %n %U:%G %a' /var/mail/amtp /var/mail/amtp/b.test
echo "== the gate, as its unit starts it (root with the unit's bounding set, no new privileges, then amtpgate)"
gate_caps=-all,+net_bind_service,+chown,+dac_override,+setuid,+setgid
echo "  without cap_dac_override (to see that the unit needs it):"
setpriv --no-new-privs --bounding-set=-all,+net_bind_service,+chown,+setuid,+setgid \
  /usr/libexec/amtp/amtp-opensmtpd-gate --config /etc/amtp/amtp.ini --smtpd 127.0.0.1:10026 \
  --socket /run/amtp-opensmtpd/gate.sock --user amtpgate 2>&1 | sed 's/^/    /' || true
setpriv --no-new-privs --bounding-set=$gate_caps /usr/libexec/amtp/amtp-opensmtpd-gate --config /etc/amtp/amtp.ini --smtpd 127.0.0.1:10026 \
  --socket /run/amtp-opensmtpd/gate.sock --delivery-notices amtp-opensmtpd-notices --user amtpgate 2>/tmp/gate.log & pid=$!
for _ in $(seq 50); do grep -q event=start /tmp/gate.log && break; sleep 0.1; done
sed 's/^/  log: /' /tmp/gate.log
stat -c '  %n %U:%G %a' /run/amtp-opensmtpd/gate.sock
expect "the gate runs as amtpgate" grep -q "^Uid:[[:space:]]*$(id -u amtpgate)[[:space:]]" /proc/$pid/status
expect "its socket is for group opensmtpd" test "$(stat -c '%G %a' /run/amtp-opensmtpd/gate.sock)" = "opensmtpd 660"
kill -TERM $pid; expect "stopped by SIGTERM, exit 0" wait $pid; pid=""
expect "the gate removed its socket" test ! -e /run/amtp-opensmtpd/gate.sock
echo "== purge"; apt-get purge -y -qq amtp-opensmtpd >/dev/null
expect "the users stay after the purge" getent passwd amtpgate amtpmail
echo "== opensmtpd smoke test passed"
