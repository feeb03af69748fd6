#!/bin/bash
# amtp-common, amtpd and libamtp-dev in a fresh root: the user, the directories, the
# conffiles, pkg-config, the unit checked by systemd-analyze, amtpd started as its unit
# starts it (ExecStartPre and ExecStart as User=amtp with CAP_NET_BIND_SERVICE alone and
# no new privileges) on port 26, a message from the host's amtp-send stored in the
# Maildir, reload, stop, amtpd started as root switching itself, remove and purge.
. "$(dirname "$0")/common.sh"
apt-get install -y -qq --no-install-recommends g++ pkgconf openssl systemd man-db >/dev/null
snapshot before
apt-get install -y -qq --no-install-recommends ./libamtp0_*.deb ./amtp-common_*.deb ./amtpd_*.deb \
  ./libamtp-dev_*.deb >/dev/null
echo "== installed"; dpkg -l 'amtp*' 'libamtp*' | awk '/^ii/{print "  " $2, $3}'
echo "== user"; getent passwd amtp; getent group amtp
echo "== directories"; stat -c '  %n %U:%G %a' /var/spool/amtp /var/mail/amtp /etc/amtp /etc/amtp/*
expect "/var/spool/amtp amtp:amtp 750" test "$(stat -c '%U:%G %a' /var/spool/amtp)" = "amtp:amtp 750"
expect "/var/mail/amtp amtp:amtp 751" test "$(stat -c '%U:%G %a' /var/mail/amtp)" = "amtp:amtp 751"
echo "== conffiles"; dpkg-query -W -f='${Conffiles}\n' amtp-common
echo "== the unit"; verify_unit amtpd.service
echo "== the template as installed (hostname missing)"
status=0; amtp-config --check-config /etc/amtp/amtp.ini || status=$?
expect "the unfilled template is refused with 78" test "$status" = 78
echo "== pkg-config"; pkg-config --cflags --libs amtp
g++ "$here/pkg_config_user.cpp" $(pkg-config --cflags --libs amtp) -o /tmp/t && /tmp/t /usr/share/doc/amtp-common/examples/amtpd.ini
echo "== the site b.test: mx.b.test on 127.0.0.78:26"
install_site b.test 127.0.0.78:26
chown amtp:amtp /etc/amtp/tls/key.pem; chmod 600 /etc/amtp/tls/key.pem
amtp-config --check-config /etc/amtp/amtp.ini | tail -1
# delivery.recipients = mailbox: a recipient is a Maildir the operator made.
install -d -o amtp -g amtp -m 0700 /var/mail/amtp/b.test /var/mail/amtp/b.test/bob
echo "== as the unit starts it"
as_unit amtpd.service
pre=$(sed -n 's/^ExecStartPre=//p' /lib/systemd/system/amtpd.service)
start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/amtpd.service)
echo "  ${unit_cmd[*]} $pre"; "${unit_cmd[@]}" $pre | tail -1
echo "  ${unit_cmd[*]} $start"
"${unit_cmd[@]}" $start 2>/tmp/amtpd.log & pid=$!
expect "port 26 answers" wait_port 127.0.0.78 26
echo "  pid file: $(cat /var/spool/amtp/amtpd.pid) (amtpd is $pid), $(stat -c '%U %a' /var/spool/amtp/amtpd.pid)"
expect "the pid file names amtpd" test "$(cat /var/spool/amtp/amtpd.pid)" = "$pid"
expect "amtpd runs as amtp" grep -q "^Uid:[[:space:]]*$(id -u amtp)[[:space:]]" /proc/$pid/status
expect "the host's amtp-send delivered" deliver_from_host b.test
expect "the message is in bob's Maildir with its MPC" delivered /var/mail/amtp/b.test/bob
kill -HUP $pid; sleep 0.5; kill -TERM $pid; expect "stopped by SIGTERM, exit 0" wait $pid; pid=""
sed 's/^/  log: /' /tmp/amtpd.log
expect "SIGHUP reloaded" grep -q "event=reload result=pass" /tmp/amtpd.log
expect "the log shows the message accepted" grep -q "event=message .*result=accepted .*mpc=per/individual" /tmp/amtpd.log
echo "== started as root with user = amtp: switches itself"
/usr/sbin/amtpd 2>/tmp/amtpd-root.log & pid=$!
for _ in $(seq 50); do grep -q event=start /tmp/amtpd-root.log && break; sleep 0.1; done
expect "amtpd switched to amtp" grep -q "^Uid:[[:space:]]*$(id -u amtp)[[:space:]]" /proc/$pid/status
kill -TERM $pid; expect "stopped by SIGTERM, exit 0" wait $pid; pid=""
echo "== amtp-send --help"; amtp-send --help | head -2
echo "== remove amtpd, then purge"
apt-get remove -y -qq amtpd >/dev/null
expect "remove keeps the queue and the Maildirs" test -d /var/spool/amtp -a -d /var/mail/amtp
apt-get purge -y -qq amtpd >/dev/null
expect "purge removes /var/spool/amtp and /var/mail/amtp" test ! -e /var/spool/amtp -a ! -e /var/mail/amtp
# The operator's own files in /etc/amtp (the certificates) are the operator's to remove.
rm -r /etc/amtp/tls
apt-get purge -y -qq amtp-common libamtp-dev libamtp0 >/dev/null
expect "the conffiles go with the purge" test ! -e /etc/amtp/amtp.ini -a ! -e /etc/amtp/policy.xml
after_purge amtp
echo "== amtpd: installation test passed"
