// A site's MPC rules, read from one XML file (profile B6). Plain data plus pure
// lookups; errors name the file, the line and the element.
#pragma once

#include "amtp/mpc.hpp"
#include "amtp/tls_identity.hpp"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace amtp {

struct Policy {
    DeclarationList advertise;                         // <advertise>: sent in EHLO, checked at MAIL
    std::map<std::string, DeclarationList> domains;    // <domain name=...>: lower-case domain
    std::map<std::string, DeclarationList> recipients; // <recipient address=...>: lower-case address
    std::map<std::string, MpcValue> senders;           // <sender address=... mpc=...>
    std::vector<PrivateNetwork> private_networks;      // <private-network>
    std::string source;                                // file name, for messages

    // Throws ConfigError("file", line, "element", message).
    static Policy load_file(const std::string& path);
    static Policy load_string(std::string_view xml, const std::string& source_name);

    // The rules that apply to one recipient: its <recipient> entry, else its
    // <domain> entry, else nullptr (the more specific wins; they do not combine).
    const DeclarationList* rules_for(std::string_view recipient_address) const;
    // True when the recipient's own rules allow the value (no rules: allowed).
    bool recipient_allows(std::string_view recipient_address, const MpcValue& value) const;
    // The MPC value bound to a local sender address, if any.
    std::optional<MpcValue> sender_mpc(std::string_view sender_address) const;
};

} // namespace amtp
