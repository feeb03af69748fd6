#!/bin/bash
# amtp-exim with Debian's exim4-daemon-heavy in a fresh root: inert when installed;
# enabled with amtp-exim-config --macros in Debian's split configuration; AMTP ACLs on
# the AMTP port only; Exim's daemon doing TLS on connect on port 26 takes a message from
# the host's amtp-send into the Maildir; the non-split configuration's lines; purge.
. "$(dirname "$0")/common.sh"
apt-get install -y -qq --no-install-recommends exim4-daemon-heavy openssl >/dev/null
snapshot before
apt-get install -y -qq --no-install-recommends ./libamtp0_*.deb ./amtp-common_*.deb ./amtp-exim_*.deb >/dev/null
echo "== installed"; dpkg -l 'amtp*' 'libamtp*' 'exim4*' | awk '/^ii/{print "  " $2, $3}'
echo "== conffiles"; dpkg-query -W -f='${Conffiles}\n' amtp-exim
echo "== installed, not enabled: Debian's configuration is unchanged"
update-exim4.conf --check && echo "  update-exim4.conf --check: ok"
update-exim4.conf && exim4 -bP acl_smtp_rcpt daemon_smtp_ports tls_on_connect_ports 2>&1 | sed 's/^/  /'
expect "Debian's RCPT ACL" test "$(exim4 -bP acl_smtp_rcpt)" = "acl_smtp_rcpt = acl_check_rcpt"
echo "== Debian's default: $(grep dc_use_split_config /etc/exim4/update-exim4.conf.conf); MAIN_TLS_ENABLE: $(grep -rl '^MAIN_TLS_ENABLE' /etc/exim4 | tr '\n' ' ')"
sed -i "s/^dc_use_split_config=.*/dc_use_split_config='true'/" /etc/exim4/update-exim4.conf.conf
echo "== split configuration, enabled for the site c.test: mx.c.test on 127.0.0.79:26"
install_site c.test 127.0.0.79:26
chown root:Debian-exim /etc/amtp/tls/key.pem; chmod 640 /etc/amtp/tls/key.pem
# As amtp-exim's README.Debian says when package amtpd is not installed.
install -d -o amtp -g amtp -m 0751 /var/mail/amtp; chmod g-s /var/mail/amtp
install -d -o amtp -g amtp -m 0711 /var/mail/amtp/c.test
install -d -o amtp -g amtp -m 0700 /var/mail/amtp/c.test/bob
amtp-exim-config --config /etc/amtp/amtp.ini --macros > /etc/exim4/conf.d/main/000_amtp-exim_settings
sed 's/^/  /' /etc/exim4/conf.d/main/000_amtp-exim_settings
update-exim4.conf --check && echo "  update-exim4.conf --check: ok"
update-exim4.conf && exim4 -bV >/dev/null && echo "  exim4 -bV: ok"
for o in acl_smtp_helo acl_smtp_rcpt daemon_smtp_ports tls_on_connect_ports tls_certificate; do exim4 -bP $o | sed 's/^/  /'; done
exim4 -bt bob@c.test 2>&1 | sed 's/^/  exim4 -bt: /'
expect "c.test is routed to the Maildirs" sh -c 'exim4 -bt bob@c.test | grep -q "router = amtp_maildir"'
for port in 25 26; do
  echo "== exim4 -bh on port $port"
  printf 'EHLO mx.a.test\r\nMAIL FROM:<a@a.test>\r\nRCPT TO:<bob@c.test>\r\nQUIT\r\n' |
    exim4 -bh 192.0.2.5 -oMi 127.0.0.79.$port 2>&1 | grep -E '^[0-9]{3}[ -]|amtp event' | sed 's/^/  /' | tee /tmp/bh.$port
done
expect "port 25: Debian's ACL" grep -q "550 relay not permitted" /tmp/bh.25
expect "AMTP port: the module's EHLO check" grep -q "504 5.7.1 Authentication failed: no client certificate" /tmp/bh.26
echo "== Exim's daemon on 127.0.0.79:26 (AMTP, TLS on connect) and 127.0.0.79:52525"
exim4 -bdf -oX '<; 127.0.0.79.52525 ; 127.0.0.79.26' & pid=$!
expect "port 26 answers" wait_port 127.0.0.79 26
expect "the host's amtp-send delivered" deliver_from_host c.test
expect "the message is in bob's Maildir with its MPC" delivered /var/mail/amtp/c.test/bob
cd /etc/amtp/tls
(printf 'EHLO mx.c.test\r\n'; sleep 1; printf 'QUIT\r\n'; sleep 1) |
  timeout 10 openssl s_client -quiet -connect 127.0.0.79:26 -CAfile ca.pem 2>/dev/null | sed 's/^/  without a certificate: /'
(printf 'EHLO x.test\r\n'; sleep 1; printf 'QUIT\r\n'; sleep 1) |
  timeout 10 openssl s_client -starttls smtp -connect 127.0.0.79:52525 2>&1 | grep -E '^subject=' | sed 's/^/  other port, STARTTLS: /' | tee /tmp/starttls
expect "the other port keeps STARTTLS with Exim's own certificate" grep -q "Exim Developers" /tmp/starttls
cd /
kill $pid; wait $pid || true; pid=""
grep amtp /var/log/exim4/mainlog | sed 's/^/  mainlog: /'
expect "the client's certificate reached the module" grep -q "amtp event=ehlo .* cert=mx.a.test" /var/log/exim4/mainlog
expect "no certificate: 504 5.7.1 from the module" grep -q "amtp event=ehlo .* reason=no_client_cert" /var/log/exim4/mainlog
echo "== disabled again"
mv /etc/exim4/conf.d/main/000_amtp-exim_settings /etc/exim4/amtp-exim.settings
update-exim4.conf && exim4 -bP acl_smtp_rcpt | sed 's/^/  /'
expect "disabled: Debian's RCPT ACL again" test "$(exim4 -bP acl_smtp_rcpt)" = "acl_smtp_rcpt = acl_check_rcpt"
echo "== non-split configuration (docs/exim.md): the same files included from the template"
sed -i "s/^dc_use_split_config=.*/dc_use_split_config='false'/" /etc/exim4/update-exim4.conf.conf
printf '.include /etc/exim4/amtp-exim.settings\n.include /etc/exim4/conf.d/main/00_amtp-exim_macros\n.include /etc/exim4/conf.d/main/60_amtp-exim_options\n' \
  > /etc/exim4/exim4.conf.localmacros
cp /etc/exim4/exim4.conf.template /tmp/exim4.conf.template
sed -i -e 's|^begin acl$|&\n.include /etc/exim4/conf.d/acl/05_amtp-exim_acl|' \
       -e 's|^begin routers$|&\n.include /etc/exim4/conf.d/router/050_amtp-exim_routers|' \
       -e 's|^begin transports$|&\n.include /etc/exim4/conf.d/transport/30_amtp-exim_transports|' /etc/exim4/exim4.conf.template
update-exim4.conf --check && echo "  update-exim4.conf --check: ok"
update-exim4.conf && exim4 -bV >/dev/null && echo "  exim4 -bV: ok"
for o in acl_smtp_helo acl_smtp_rcpt tls_on_connect_ports; do exim4 -bP $o | sed 's/^/  /'; done
expect "non-split: the AMTP HELO ACL on the AMTP port" sh -c 'exim4 -bP acl_smtp_helo | grep -q amtp_acl_helo'
printf 'EHLO mx.a.test\r\nQUIT\r\n' | exim4 -bh 192.0.2.5 -oMi 127.0.0.79.26 2>&1 | grep -E '^[0-9]{3} ' | sed 's/^/  port 26: /'
exim4 -bt bob@c.test 2>&1 | sed 's/^/  exim4 -bt: /'
expect "non-split: c.test is routed to the Maildirs" sh -c 'exim4 -bt bob@c.test | grep -q "router = amtp_maildir"'
echo "== back to Debian's configuration; the operator's own files removed"
rm /etc/exim4/exim4.conf.localmacros /etc/exim4/amtp-exim.settings
cp /tmp/exim4.conf.template /etc/exim4/exim4.conf.template
rm -r /etc/amtp/tls /var/mail/amtp
update-exim4.conf --check && echo "  update-exim4.conf --check: ok"
echo "== purge"
apt-get purge -y -qq amtp-exim amtp-common libamtp0 >/dev/null
ls /etc/exim4/conf.d/main/ | sed 's/^/  conf.d\/main: /'
update-exim4.conf --check && echo "  update-exim4.conf --check after purge: ok"
after_purge amtp
echo "== exim: installation test passed"
