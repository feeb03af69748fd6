// The TLS identity of a peer: a pure function from a presented chain plus the trust
// settings to an Identity or a precise refusal reason. The standalone server hands in
// the chain OpenSSL received; adapters hand in the DER blobs their MTA exposes.
#pragma once

#include "amtp/address.hpp"
#include "amtp/handles.hpp"
#include "amtp/reply.hpp"

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace amtp {

// Which rules a listener applies (profile s4.1, s7).
enum class ListenerKind { public_network, private_network };

enum class TrustKind { public_ca, private_ca, pinned };

struct Identity {
    // Normalised SAN dNSNames (invalid ones skipped), else the last subject CN when the
    // certificate has no SAN dNSName at all. A wildcard name is kept as "*.a.test" for
    // the log and the trace headers; client_name_matches never lets it match.
    std::vector<std::string> names;
    std::string subject;              // RFC 2253 one-line form
    std::string issuer;
    std::string serial;               // upper-case hex
    std::string sha256;               // lower-case hex of the DER leaf, no separators
    std::time_t not_before = 0;
    std::time_t not_after = 0;
    TrustKind trust = TrustKind::public_ca;
    std::string private_network;      // policy name of the private network, if any
    bool is_private() const { return trust != TrustKind::public_ca; }
};

struct IdentityResult {
    std::optional<Identity> identity;
    Reason reason = Reason::none;     // set when identity is empty
    std::string detail;               // OpenSSL's words, for the log line
    bool ok() const { return identity.has_value(); }
};

// A self-signed certificate an ISP hands a customer: valid only from listed networks.
struct PinnedCertificate {
    std::string sha256;               // lower-case hex, no separators
    std::vector<IpNetwork> from;
};

struct PrivateNetwork {
    std::string name;
    std::vector<std::string> ca_files;
    std::vector<PinnedCertificate> pins;
};

struct TrustOptions {
    // PEM files (bundles allowed) or single DER certificates. No system default is
    // added: an empty list trusts nothing.
    std::vector<std::string> public_ca_files;    // tls.trusted-ca
    std::vector<std::string> private_ca_files;   // tls.private-ca (network "private")
    // tls.crl: PEM file with any number of CRLs (or one DER CRL), for client
    // certificates. The leaf's issuer MUST have a CRL in it (fail closed, but as the
    // local fault it is: refused with the temporary crl_missing); an expired CRL gives
    // the temporary crl_stale. A CA above the leaf is checked when its issuer's CRL is
    // present and passes otherwise. Pinned certificates and verify_server are not
    // CRL-checked.
    std::string crl_file;
    // tls.require-client-eku (profile B3). The extended key usage rule, applied to
    // every certificate of the verified chain: no EKU extension or
    // anyExtendedKeyUsage passes; otherwise the chain must share clientAuth, or
    // (unless this is set) serverAuth. Anything else is cert_purpose.
    bool require_client_eku = false;
    std::vector<PrivateNetwork> private_networks; // from the policy file
};

// Immutable once built; share it between sessions (and rebuild on reload).
class TrustStore {
public:
    // Throws ConfigError naming the file that cannot be read or parsed.
    static std::shared_ptr<const TrustStore> load(const TrustOptions& options);

    // A client certificate on a listener. Public listeners trust only the public CAs;
    // private listeners trust only private CAs and pinned certificates (profile s7).
    // `chain` is leaf first (see peer_certificate_chain: on a server,
    // SSL_get_peer_cert_chain leaves the leaf out). The chain is not modified.
    // Reasons: no_client_cert (null or empty chain), untrusted_issuer, cert_expired,
    // cert_not_yet_valid, cert_revoked, cert_purpose, cert_no_name,
    // pin_wrong_network, cert_invalid (anything else; `detail` has OpenSSL's words).
    // On a private listener a pin whose networks contain `peer` is decided as a pin
    // (trust=pinned: dates, EKU and a name are still required); otherwise each
    // private CA store is tried (trust=private_ca, private_network=its name); a pin
    // matched from an unlisted network that no CA accepts is pin_wrong_network.
    IdentityResult verify_client(STACK_OF(X509) * chain, ListenerKind listener, const IpAddress& peer,
                                 std::time_t now) const;
    // The same from DER blobs, leaf first; a blob that is not exactly one DER
    // certificate is cert_invalid, an empty list no_client_cert.
    IdentityResult verify_client_der(const std::vector<std::string>& der_chain, ListenerKind listener,
                                     const IpAddress& peer, std::time_t now) const;

    // The server certificate on an outgoing connection, checked against the SRV target
    // (RFC 6125 names, wildcards allowed) with the public CAs and the serverAuth EKU
    // (or none). Reasons: server_name_mismatch for the name; server_cert_invalid for
    // everything else (no certificate, untrusted, expired, purpose ...), with
    // OpenSSL's words in `detail`: the client side has one reply for all of them.
    IdentityResult verify_server(STACK_OF(X509) * chain, std::string_view expected_name, std::time_t now) const;

    // The X509_STORE holding the public CAs (and the CRLs, without check flags), for an
    // SSL_CTX that verifies servers. Owned by this TrustStore: give it to an SSL_CTX
    // with SSL_CTX_set1_verify_cert_store, which takes its own reference.
    X509_STORE* public_store() const;

    TrustStore();
    ~TrustStore();
    TrustStore(const TrustStore&) = delete;
    TrustStore& operator=(const TrustStore&) = delete;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Names and fingerprints of one certificate without any verification (for logs and
// trace headers, and the adapters' tests).
Identity describe_certificate(X509* certificate);

// PEM or DER file with one certificate (the first, for a PEM bundle); throws
// ConfigError naming the file.
X509Ptr load_certificate_file(const std::string& path);

// The peer's certificates, leaf first, on either side of a finished handshake: on a
// server SSL_get_peer_cert_chain omits the leaf, on a client it includes it. Empty
// (never null) when the peer sent no certificate. A resumed session keeps only the
// peer's leaf, not its chain: a host must verify on full handshakes (turn resumption
// off on AMTP listeners, or keep the identity decided on the full handshake).
X509StackPtr peer_certificate_chain(SSL* ssl);

} // namespace amtp
