// A verified identity in a compact binary form, bound to the listener and the peer
// address it was verified for. It travels inside TLS session tickets (which the
// server encrypts and authenticates), so a resumed session, which carries only the
// client's leaf certificate, keeps the identity its full handshake proved.
#pragma once

#include "amtp/address.hpp"
#include "amtp/tls_identity.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace amtp {

struct BoundIdentity {
    Identity identity;
    ListenerKind listener = ListenerKind::public_network;
    IpAddress peer;
};

std::string encode_identity(const BoundIdentity& bound);
// nullopt for anything that is not exactly what encode_identity wrote.
std::optional<BoundIdentity> decode_identity(std::string_view data);

// The identity a resumed session may use: the one in its ticket when that was made
// for this listener and address and the certificate has not expired since;
// otherwise a refusal (cert_expired, or cert_invalid with the reason in detail).
IdentityResult resumed_identity(std::string_view ticket_data, ListenerKind listener, const IpAddress& peer,
                                std::time_t now);

} // namespace amtp
