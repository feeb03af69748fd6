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
#include <vector>

namespace amtp {

// Which rules a listener applies (profile s4.1, s7).
enum class ListenerKind { public_network, private_network };

enum class TrustKind { public_ca, private_ca, pinned };

struct Identity {
    std::vector<std::string> names;   // normalised SAN dNSNames, else the subject CN
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
    std::vector<std::string> public_ca_files;    // tls.trusted-ca
    std::vector<std::string> private_ca_files;   // tls.private-ca (network "private")
    std::string crl_file;                        // tls.crl, checked for leaf and chain
    bool require_client_eku = false;             // tls.require-client-eku (profile B3)
    std::vector<PrivateNetwork> private_networks; // from the policy file
};

// Immutable once built; share it between sessions (and rebuild on reload).
class TrustStore {
public:
    // Throws ConfigError naming the file that cannot be read or parsed.
    static std::shared_ptr<const TrustStore> load(const TrustOptions& options);

    // A client certificate on a listener. Public listeners trust only the public CAs;
    // private listeners trust only private CAs and pinned certificates (profile s7).
    // `chain` is leaf first, as SSL_get_peer_cert_chain returns it on a server.
    IdentityResult verify_client(STACK_OF(X509) * chain, ListenerKind listener, const IpAddress& peer,
                                 std::time_t now) const;
    IdentityResult verify_client_der(const std::vector<std::string>& der_chain, ListenerKind listener,
                                     const IpAddress& peer, std::time_t now) const;

    // The server certificate on an outgoing connection, checked against the SRV target.
    IdentityResult verify_server(STACK_OF(X509) * chain, std::string_view expected_name, std::time_t now) const;

    // The X509_STORE holding the public CAs, for an SSL_CTX that verifies servers.
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

// PEM or DER file with one certificate; throws ConfigError.
X509Ptr load_certificate_file(const std::string& path);

} // namespace amtp
