#!/bin/bash
# amtp-opensmtpd with Debian 12's opensmtpd (6.8) in a fresh root, set up as its
# README.Debian says: users, smtpd.conf from amtp-opensmtpd-conf accepted by smtpd -n,
# smtpd started, the gate started as its unit starts it (root with the unit's bounding
# set and no new privileges, then amtpgate) on port 26; a message from the host's
# amtp-send stored in the Maildir by the packaged mda; purge.
. "$(dirname "$0")/common.sh"
apt-get install -y -qq --no-install-recommends opensmtpd openssl systemd man-db >/dev/null
snapshot before
apt-get install -y -qq --no-install-recommends ./libamtp0_*.deb ./amtp-common_*.deb ./amtp-opensmtpd_*.deb >/dev/null
echo "== installed"; dpkg -l 'amtp*' 'libamtp*' 'opensmtpd*' | awk '/^ii/{print "  " $2, $3}'
echo "== users"; getent passwd amtpgate amtpmail | sed 's/^/  /'; id amtpgate | sed 's/^/  /'
echo "== the unit"; verify_unit amtp-opensmtpd-gate.service
echo "== tmpfiles.d"; sed 's/^/  /' /usr/lib/tmpfiles.d/amtp-opensmtpd.conf
# No systemd runs in this root: systemd-tmpfiles makes the directory as at boot.
systemd-tmpfiles --create /usr/lib/tmpfiles.d/amtp-opensmtpd.conf
stat -c '  %n %U:%G %a' /run/amtp-opensmtpd
expect "/run/amtp-opensmtpd amtpgate:opensmtpd 750" test "$(stat -c '%U:%G %a' /run/amtp-opensmtpd)" = "amtpgate:opensmtpd 750"
echo "== the site d.test: mx.d.test on 127.0.0.80:26"
install_site d.test 127.0.0.80:26
chmod 600 /etc/amtp/tls/key.pem
echo "== step 1: amtp-opensmtpd-conf, the lines merged into /etc/smtpd.conf (here: the whole file)"
cp /etc/smtpd.conf /tmp/smtpd.conf.debian
amtp-opensmtpd-conf -c /etc/amtp/amtp.ini --smtpd 127.0.0.1:10026 --socket /run/amtp-opensmtpd/gate.sock \
  --delivery-notices amtp-opensmtpd-notices --prepare-maildir -o /etc/smtpd.conf
sed 's/^/  smtpd.conf: /' /etc/smtpd.conf
echo "== step 2: smtpd -n"
smtpd -n 2>&1 | sed 's/^/  /'
expect "smtpd accepts the generated lines" smtpd -n
stat -c '  %n %U:%G %a' /var/mail/amtp /var/mail/amtp/d.test
install -d -o amtpmail -g amtpmail -m 0700 /var/mail/amtp/d.test/bob
echo "== step 3: smtpd as its unit starts it, then the gate as its unit starts it"
# Debian's opensmtpd leaves its spool to its init script (root, 0711).
install -d -m 0711 /var/spool/smtpd
smtpd -d 2>/tmp/smtpd.log & smtpd_pid=$!; pid=$smtpd_pid
wait_port 127.0.0.1 10026 || sed 's/^/  smtpd: /' /tmp/smtpd.log
expect "smtpd listens on 127.0.0.1:10026" wait_port 127.0.0.1 10026
as_unit amtp-opensmtpd-gate.service
gate=$(unit_value amtp-opensmtpd-gate.service ExecStart)
echo "  ${unit_cmd[*]} $gate"
"${unit_cmd[@]}" $gate 2>/tmp/gate.log & gate_pid=$!; pid="$smtpd_pid $gate_pid"
expect "port 26 answers" wait_port 127.0.0.80 26
stat -c '  %n %U:%G %a' /run/amtp-opensmtpd/gate.sock
expect "the gate runs as amtpgate" grep -q "^Uid:[[:space:]]*$(id -u amtpgate)[[:space:]]" /proc/$gate_pid/status
expect "its socket is for group opensmtpd" test "$(stat -c '%G %a' /run/amtp-opensmtpd/gate.sock)" = "opensmtpd 660"
expect "the host's amtp-send delivered" deliver_from_host d.test
expect "the message is in bob's Maildir with its MPC" delivered /var/mail/amtp/d.test/bob
kill -TERM $gate_pid; expect "the gate stopped by SIGTERM, exit 0" wait $gate_pid
kill -TERM $smtpd_pid; wait $smtpd_pid || true; pid=""
sed 's/^/  gate: /' /tmp/gate.log
grep -E 'amtp|smtp-in|delivery' /tmp/smtpd.log | sed 's/^/  smtpd: /' | tail -n 20
expect "the gate removed its socket" test ! -e /run/amtp-opensmtpd/gate.sock
echo "== without cap_dac_override the gate cannot start (why the unit keeps it)"
setpriv --no-new-privs --bounding-set=-all,+net_bind_service,+chown,+setuid,+setgid $gate 2>&1 | sed 's/^/  /' || true
echo "== back to Debian's smtpd.conf; the operator's own files removed"
cp /tmp/smtpd.conf.debian /etc/smtpd.conf
rm -r /etc/amtp/tls /var/mail/amtp /run/amtp-opensmtpd
echo "== purge"
apt-get purge -y -qq amtp-opensmtpd amtp-common libamtp0 >/dev/null
after_purge amtpgate amtpmail amtp
echo "== opensmtpd: installation test passed"
