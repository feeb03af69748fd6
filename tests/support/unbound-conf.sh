#!/usr/bin/env bash
# Writes to stdout an unbound.conf for a test's own DNS on loopback, in the foreground,
# answering only from local data: the zones test. and 127.in-addr.arpa., with the
# sending host mx.a.test (127.0.0.2, and its PTR), and refusing everything else.
#
#   unbound-conf.sh PORT DIR [LOCAL-DATA-LINE...] > unbound.conf
#
# PORT: the port on 127.0.0.1; DIR: unbound's working directory; each further argument
# one more line of the server clause, e.g. 'local-data: "mx.b.test. 300 IN A 127.0.0.3"'.
# Used by tools/demo and tests/packaging/install-test.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 PORT DIR [LOCAL-DATA-LINE...]" >&2; exit 64; }
port=$1 dir=$2; shift 2
cat <<CONF
server:
  interface: 127.0.0.1
  port: $port
  so-reuseport: no
  do-daemonize: no
  username: ""
  chroot: ""
  pidfile: ""
  directory: "$dir"
  use-syslog: no
  logfile: ""
  do-ip6: no
  outgoing-interface: 127.0.0.1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  local-zone: "." refuse
  local-zone: "test." static
  local-zone: "127.in-addr.arpa." static
  local-data: "mx.a.test. 300 IN A 127.0.0.2"
  local-data-ptr: "127.0.0.2 mx.a.test."
CONF
for line in "$@"; do echo "  $line"; done
printf 'remote-control:\n  control-enable: no\n'
