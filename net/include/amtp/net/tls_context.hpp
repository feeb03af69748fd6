// OpenSSL contexts for AMTP's mutual TLS, shared by amtpd, amtp-send and the
// OpenSMTPD gate. The TLS layer only asks for and carries certificates; whether a
// peer is who it claims is decided afterwards by the core's TrustStore, so a refusal
// is a precise AMTP reply (504 5.7.1 with a reason) instead of an anonymous alert.
#pragma once

#include "amtp/handles.hpp"
#include "amtp/settings.hpp"
#include "amtp/ticket_keys.hpp"
#include "amtp/tls_identity.hpp"

#include <ctime>
#include <memory>
#include <optional>
#include <string>

namespace amtp::net {

// The private key of tls.key, read into memory. amtpd reads it as root and keeps it,
// so that a reload after dropping privileges can still use a key only root may read.
struct PrivateKeyFile {
    std::shared_ptr<EVP_PKEY> key;   // null when it could not be read
    bool denied = false;             // the file is there but we may not read it
    std::string error;
};
PrivateKeyFile read_private_key(const std::string& path);

// Whether a server context lets clients resume TLS sessions; each front-end chooses.
// A resumed session brings only the client's leaf, not its chain, so its identity
// cannot be verified again: resuming is safe only when the ticket itself carries the
// identity the full handshake verified.
enum class Resumption {
    // Every session is a full handshake, its identity verified from the chain: no
    // tickets (TLS 1.2 or 1.3) and no session cache, so an offered session is never found.
    off,
    // One stateless ticket per full handshake, carrying the verified identity bound to
    // the listener and the peer's address (TicketBinding, which the front-end attaches
    // to every SSL; without one a resumed session has no identity and is refused).
    // The ticket keys are those of tls.ticket-keys when it is set (ticket_keys.hpp):
    // shared by the hosts of a domain and kept across reloads, the newest encrypting,
    // older ones decrypting (and renewing) what they made. Without it they are
    // OpenSSL's, random per context and never stored: tickets are only good until the
    // context is rebuilt (reload, restart), then a full handshake again.
    bound_tickets,
};

// How long a ticket may be used after the full handshake that made it (TLS 1.3 tells
// the client so; OpenSSL refuses older ones): the least time a retired key must stay
// in tls.ticket-keys for every ticket it made to keep resuming.
inline constexpr long ticket_lifetime_seconds = 2 * 3600;

// TLS 1.2 minimum (settings.tls.min_version may raise it), our certificate chain and
// key, a client certificate requested (not required at the TLS layer), session
// resumption as `resumption` says. Throws ConfigError naming the file or setting.
// `key`, when given, is used instead of reading settings.tls.key. `ticket_keys`, for
// bound_tickets, are the keys read from settings.tls.ticket_keys (a front-end making
// several contexts reads the file once); when null and the setting names a file, it
// is read here.
SslCtxPtr make_server_context(const Settings& settings, ListenerKind listener, Resumption resumption,
                              EVP_PKEY* key = nullptr, std::shared_ptr<const TicketKeys> ticket_keys = nullptr);

// The keys a server context for `listener` uses under tls.ticket-keys: from each key of
// the file, HKDF-SHA256 (info "amtp ticket key public" or "amtp ticket key private")
// derives a name, an HMAC key and an AES key of its own. A ticket thus resumes only on
// the listener kind that made it, on every host reading the same file, as with
// per-context random keys: offered to the other listener it is not decrypted, and the
// client makes a full handshake. Throws ConfigError when OpenSSL cannot derive.
TicketKeys listener_ticket_keys(const TicketKeys& keys, ListenerKind listener);

// For outgoing AMTP: our certificate as the client certificate, server verification
// left to TrustStore::verify_server against the SRV target.
SslCtxPtr make_client_context(const Settings& settings, EVP_PKEY* key = nullptr);

// What the ticket callbacks of a server connection need. A resumed session carries
// only the client's leaf, not its chain, so the identity is verified when the ticket
// is made (during the full handshake) and travels inside the ticket, bound to the
// listener and the address (identity_codec.hpp).
struct TicketBinding {
    const TrustStore* trust = nullptr;
    ListenerKind listener = ListenerKind::public_network;
    IpAddress peer;
    std::optional<IdentityResult> identity;   // once verified
};

// Attaches `binding` (owned by the caller, alive as long as `ssl`) to a server SSL.
void attach_ticket_binding(SSL* ssl, TicketBinding* binding);

// After a server handshake: the identity of the peer, from the resumed ticket or from
// the chain it presented.
IdentityResult handshake_identity(SSL* ssl, TicketBinding& binding, std::time_t now);

std::string tls_version(SSL* ssl);
std::string tls_cipher(SSL* ssl);

} // namespace amtp::net
