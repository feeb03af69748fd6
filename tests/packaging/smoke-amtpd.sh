#!/bin/bash
# amtp-common, amtpd and libamtp-dev: the user, the directories, the conffiles, pkg-config,
# amtpd run as its unit runs it (user amtp, CAP_NET_BIND_SERVICE alone, no new
# privileges) and as root switching itself, reload, stop, remove and purge.
. "$(dirname "$0")/common.sh"
apt-get install -y -qq --no-install-recommends ./libamtp0_*.deb ./amtp-common_*.deb ./amtpd_*.deb \
  ./libamtp-dev_*.deb g++ pkgconf openssl >/dev/null
echo "== installed"; dpkg -l 'amtp*' 'libamtp*' | awk '/^ii/{print "  " $2, $3}'
echo "== user"; getent passwd amtp; getent group amtp
echo "== directories"; stat -c '  %n %U:%G %a' /var/spool/amtp /var/mail/amtp /etc/amtp /etc/amtp/*
expect "/var/spool/amtp amtp:amtp 750" test "$(stat -c '%U:%G %a' /var/spool/amtp)" = "amtp:amtp 750"
expect "/var/mail/amtp amtp:amtp 751" test "$(stat -c '%U:%G %a' /var/mail/amtp)" = "amtp:amtp 751"
echo "== conffiles"; dpkg-query -W -f='${Conffiles}\n' amtp-common
echo "== the template as installed (hostname missing)"
status=0; amtp-config --check-config /etc/amtp/amtp.ini || status=$?
expect "the unfilled template is refused with 78" test "$status" = 78
echo "== pkg-config"; pkg-config --cflags --libs amtp
g++ "$here/pkg_config_user.cpp" $(pkg-config --cflags --libs amtp) -o /tmp/t && /tmp/t /usr/share/doc/amtp-common/examples/amtpd.ini
echo "== a site on 127.0.0.78:26"
make_site 127.0.0.78:26
chown amtp:amtp /etc/amtp/tls/key.pem; chmod 600 /etc/amtp/tls/key.pem
amtp-config --check-config /etc/amtp/amtp.ini | tail -1
echo "== as the unit runs it: ExecStartPre, then ExecStart as amtp with CAP_NET_BIND_SERVICE"
as_unit=(setpriv --reuid=amtp --regid=amtp --init-groups --no-new-privs --bounding-set=-all,+net_bind_service
         --inh-caps=+net_bind_service --ambient-caps=+net_bind_service)
"${as_unit[@]}" /usr/sbin/amtpd --check-config | tail -1
"${as_unit[@]}" /usr/sbin/amtpd 2>/tmp/amtpd.log & pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.78/26) 2>/dev/null && break; sleep 0.1; done
(exec 3<>/dev/tcp/127.0.0.78/26) && echo "  port 26 answers"
echo "  pid file: $(cat /var/spool/amtp/amtpd.pid) (amtpd is $pid), $(stat -c '%U %a' /var/spool/amtp/amtpd.pid)"
expect "the pid file names amtpd" test "$(cat /var/spool/amtp/amtpd.pid)" = "$pid"
expect "amtpd runs as amtp" grep -q "^Uid:[[:space:]]*$(id -u amtp)[[:space:]]" /proc/$pid/status
kill -HUP $pid; sleep 0.5; kill -TERM $pid; expect "stopped by SIGTERM, exit 0" wait $pid; pid=""
sed 's/^/  log: /' /tmp/amtpd.log
expect "SIGHUP reloaded" grep -q "event=reload result=pass" /tmp/amtpd.log
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
apt-get purge -y -qq amtp-common libamtp-dev >/dev/null
expect "the user amtp stays after purging amtp-common" getent passwd amtp
expect "the conffiles go with the purge" test ! -e /etc/amtp/amtp.ini -a ! -e /etc/amtp/policy.xml
echo "== amtpd smoke test passed"
