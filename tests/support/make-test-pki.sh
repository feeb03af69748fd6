#!/usr/bin/env bash
# Builds the certificates the TLS identity tests need, with the openssl CLI only.
#
#   make-test-pki.sh OUTDIR
#
# Idempotent: OUTDIR/.complete is written last; when it exists we exit at once. The
# files are generated in a temporary sibling directory and renamed into place, so a
# reader never sees a half-built OUTDIR (callers that run in parallel still serialise
# on a lock: see tests/support/pki.cpp).
#
# Every certificate has fixed validity dates (openssl ca -startdate/-enddate), so the
# tests do not depend on the second at which the PKI was made. Keys are ECDSA P-256.
#
# Output (flat, in OUTDIR):
#   CAs      public-root, public-intermediate (under public-root), other-root,
#            private-root ("ISP Private CA"): NAME.key NAME.pem NAME.der
#   CRLs     NAME.crl.pem for each CA; public-chain.crl.pem = intermediate + root CRLs
#   leaves   NAME.key NAME.pem NAME.der NAME.chain.pem (leaf + intermediate, when
#            there is one) NAME.sha256 (lower-case hex) NAME.serial (as `openssl x509
#            -serial` prints it) NAME.subject (RFC 2253)
#     client         mx.a.test           clientAuth+serverAuth   public-intermediate
#     server-only    mx.c.test           serverAuth              public-intermediate
#     san-only       CN "Mail Server", SAN mail.a.test + MX2.A.TEST
#     cn-only        CN cn.a.test, no SAN, no EKU at all
#     no-name        CN "Mail Server", no SAN
#     wildcard       SAN *.a.test
#     expired        mx.a.test, 2020-01-01 .. 2021-01-01
#     not-yet-valid  mx.a.test, 2099-01-01 .. 2100-01-01
#     revoked        revoked.a.test, listed in public-intermediate.crl.pem
#     email-only     mail.a.test, emailProtection only
#     server-b       mx.b.test           serverAuth              public-intermediate
#     other-ca       mx.a.test           under other-root ("Other CA")
#     private        host1.customers.isp.test under private-root
#     pinned         dyn1.isp.test, self-signed (for pinning)
#     pinned-expired dyn2.isp.test, self-signed, 2020-01-01 .. 2021-01-01
#     pinned-noname  self-signed, CN "Customer 42", no SAN
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
[[ -e "$out/.complete" ]] && exit 0

parent=$(dirname -- "$out")
mkdir -p -- "$parent"
work=$(mktemp -d "$parent/.pki-build.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
log=$work/openssl.log

# openssl is chatty on stderr even when it succeeds: keep its words for a failure.
ossl() {
    if ! openssl "$@" >>"$log" 2>&1; then
        echo "make-test-pki: openssl $* failed:" >&2
        cat "$log" >&2
        exit 1
    fi
}

# A minimal config so that the system openssl.cnf cannot add anything to requests.
cat >"$work/req.cnf" <<'EOF'
[ req ]
distinguished_name = req_dn
[ req_dn ]
EOF

ca_start=20000101000000Z
ca_end=21500101000000Z
leaf_start=20240101000000Z
leaf_end=20900101000000Z

# new_request NAME SUBJECT: a P-256 key and a certificate request for it.
new_request() {
    ossl req -config "$work/req.cnf" -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$work/$1.key" -out "$work/$1.csr" -subj "$2"
}

# ca_config CA: the database `openssl ca` needs, in its own directory.
ca_config() {
    local dir=$work/ca-$1
    mkdir -p "$dir/new"
    : >"$dir/index.txt"
    echo 1000 >"$dir/crlnumber"
    cat >"$dir/ca.cnf" <<EOF
[ ca ]
default_ca = test_ca
[ test_ca ]
database = $dir/index.txt
new_certs_dir = $dir/new
certificate = $work/$1.pem
private_key = $work/$1.key
crlnumber = $dir/crlnumber
serial = $dir/serial
default_md = sha256
default_crl_days = 3650
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[ policy_any ]
organizationName = optional
commonName = optional
EOF
}

# ext_file NAME LINE...: the extension section for one certificate.
ext_file() {
    local name=$1
    shift
    {
        echo "[ ext ]"
        printf '%s\n' "$@"
    } >"$work/$name.ext"
}

# sign NAME ISSUER START END: issue NAME's request with ISSUER's CA (ISSUER = NAME
# means self-signed).
sign() {
    local name=$1 issuer=$2 start=$3 end=$4
    local selfsign=()
    if [[ $issuer == "$name" ]]; then
        ca_config "$name"
        selfsign=(-selfsign -keyfile "$work/$name.key")
    fi
    ossl ca -batch -config "$work/ca-$issuer/ca.cnf" "${selfsign[@]}" -rand_serial -notext \
        -startdate "$start" -enddate "$end" -in "$work/$name.csr" -out "$work/$name.pem" \
        -extfile "$work/$name.ext" -extensions ext
}

# Work that only reads a finished certificate runs in the background, beside the next
# signature (which must stay serial: a CA's database is not shared safely).
jobs_running=()
background() {
    "$@" &
    jobs_running+=($!)
}

# to_der NAME
to_der() {
    ossl x509 -in "$work/$1.pem" -outform DER -out "$work/$1.der"
}

# root NAME SUBJECT
root() {
    new_request "$1" "$2"
    ext_file "$1" "basicConstraints = critical, CA:TRUE" "keyUsage = critical, keyCertSign, cRLSign" \
        "subjectKeyIdentifier = hash"
    sign "$1" "$1" "$ca_start" "$ca_end"
    background to_der "$1"
}

# leaf NAME ISSUER SUBJECT START END EXTRA-EXTENSION-LINE...
leaf() {
    local name=$1 issuer=$2 subject=$3 start=$4 end=$5
    shift 5
    new_request "$name" "$subject"
    # A self-signed leaf has no issuer key to name.
    local aki=("authorityKeyIdentifier = keyid")
    [[ $issuer == "$name" ]] && aki=()
    ext_file "$name" "basicConstraints = critical, CA:FALSE" "keyUsage = critical, digitalSignature" \
        "subjectKeyIdentifier = hash" "${aki[@]}" "$@"
    sign "$name" "$issuer" "$start" "$end"
    background leaf_files "$name" "$issuer"
}

# leaf_files NAME ISSUER: the DER form, the chain and the facts the tests compare with.
leaf_files() {
    local name=$1 issuer=$2
    to_der "$name"
    cp "$work/$name.pem" "$work/$name.chain.pem"
    if [[ $issuer == public-intermediate ]]; then
        cat "$work/public-intermediate.pem" >>"$work/$name.chain.pem"
    fi
    # What the openssl CLI itself says: one run prints the three lines in this order.
    local facts
    facts=$(openssl x509 -in "$work/$name.pem" -noout -fingerprint -sha256 -serial -subject -nameopt RFC2253)
    sed -n '1{s/^[^=]*=//; s/://g; y/ABCDEF/abcdef/; p}' <<<"$facts" >"$work/$name.sha256"
    sed -n 's/^serial=//p' <<<"$facts" >"$work/$name.serial"
    sed -n 's/^subject=//p' <<<"$facts" >"$work/$name.subject"
}

# --- certificate authorities
root public-root "/O=AMTP Test/CN=Test Public CA"
new_request public-intermediate "/O=AMTP Test/CN=Test Public Intermediate CA"
ext_file public-intermediate "basicConstraints = critical, CA:TRUE, pathlen:0" \
    "keyUsage = critical, keyCertSign, cRLSign" "subjectKeyIdentifier = hash" \
    "authorityKeyIdentifier = keyid:always"
sign public-intermediate public-root "$ca_start" "$ca_end"
background to_der public-intermediate
ca_config public-intermediate
root other-root "/O=Elsewhere/CN=Other CA"
root private-root "/O=ISP/CN=ISP Private CA"

both="extendedKeyUsage = clientAuth, serverAuth"

# --- leaves under the public intermediate
leaf client public-intermediate "/O=Test A/CN=mx.a.test" "$leaf_start" "$leaf_end" \
    "subjectAltName = DNS:mx.a.test" "$both"
leaf server-only public-intermediate "/CN=mx.c.test" "$leaf_start" "$leaf_end" \
    "subjectAltName = DNS:mx.c.test" "extendedKeyUsage = serverAuth"
leaf san-only public-intermediate "/CN=Mail Server" "$leaf_start" "$leaf_end" \
    "subjectAltName = DNS:mail.a.test, DNS:MX2.A.TEST" "$both"
leaf cn-only public-intermediate "/CN=cn.a.test" "$leaf_start" "$leaf_end"
leaf no-name public-intermediate "/CN=Mail Server" "$leaf_start" "$leaf_end" \
    "extendedKeyUsage = clientAuth"
leaf wildcard public-intermediate "/CN=Wildcard A" "$leaf_start" "$leaf_end" \
    "subjectAltName = DNS:*.a.test" "$both"
leaf expired public-intermediate "/CN=mx.a.test" 20200101000000Z 20210101000000Z \
    "subjectAltName = DNS:mx.a.test" "$both"
leaf not-yet-valid public-intermediate "/CN=mx.a.test" 20990101000000Z 21000101000000Z \
    "subjectAltName = DNS:mx.a.test" "$both"
leaf revoked public-intermediate "/CN=revoked.a.test" "$leaf_start" "$leaf_end" \
    "subjectAltName = DNS:revoked.a.test" "$both"
leaf email-only public-intermediate "/CN=mail.a.test" "$leaf_start" "$leaf_end" \
    "subjectAltName = DNS:mail.a.test" "extendedKeyUsage = emailProtection"
leaf server-b public-intermediate "/CN=mx.b.test" "$leaf_start" "$leaf_end" \
    "subjectAltName = DNS:mx.b.test" "extendedKeyUsage = serverAuth"

# --- other roots and self-signed certificates
leaf other-ca other-root "/CN=mx.a.test" "$leaf_start" "$leaf_end" "subjectAltName = DNS:mx.a.test" "$both"
leaf private private-root "/CN=host1.customers.isp.test" "$leaf_start" "$leaf_end" \
    "subjectAltName = DNS:host1.customers.isp.test" "extendedKeyUsage = clientAuth"
leaf pinned pinned "/CN=dyn1.isp.test" "$leaf_start" "$leaf_end" "subjectAltName = DNS:dyn1.isp.test" "$both"
leaf pinned-expired pinned-expired "/CN=dyn2.isp.test" 20200101000000Z 20210101000000Z \
    "subjectAltName = DNS:dyn2.isp.test" "$both"
leaf pinned-noname pinned-noname "/CN=Customer 42" "$leaf_start" "$leaf_end" "$both"

# --- revocation
ossl ca -batch -config "$work/ca-public-intermediate/ca.cnf" -revoke "$work/revoked.pem" -crl_reason keyCompromise
for ca in public-root public-intermediate other-root private-root; do
    ossl ca -batch -config "$work/ca-$ca/ca.cnf" -gencrl -out "$work/$ca.crl.pem"
done
cat "$work/public-intermediate.crl.pem" "$work/public-root.crl.pem" >"$work/public-chain.crl.pem"

# A failed background job fails the script here (set -e).
for job in "${jobs_running[@]}"; do
    wait "$job"
done

# --- publish: only the files the tests use, then the completion mark, then rename.
mkdir "$work/out"
(cd "$work" && mv -- *.key *.pem *.der *.sha256 *.serial *.subject out/)
touch "$work/out/.complete"
rm -rf -- "$out"
mv -- "$work/out" "$out"
