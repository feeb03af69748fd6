// What the gate tells the filter about one relayed session: the client's real address
// and port (the key smtpd reports in link-connect, taken from our PROXY header), the
// listener kind, and the TLS result the core's TrustStore decided. One line per
// record, tab-separated, every field escaped, so neither side can be confused by a
// certificate subject holding a tab or a newline.
#pragma once

#include "amtp/address.hpp"
#include "amtp/server_session.hpp"
#include "amtp/tls_identity.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace amtp::opensmtpd {

struct SessionKey {
    IpAddress address;
    std::uint16_t port = 0;
    friend bool operator<(const SessionKey& a, const SessionKey& b)
    {
        return a.address != b.address ? a.address < b.address : a.port < b.port;
    }
    friend bool operator==(const SessionKey& a, const SessionKey& b)
    {
        return a.address == b.address && a.port == b.port;
    }
    std::string str() const;
    // smtpd's form in link-connect: "127.0.0.2:40000", "[::1]:40000" or "::1:40000".
    static std::optional<SessionKey> parse(std::string_view text);
};

struct Registration {
    SessionKey key;
    ListenerKind listener = ListenerKind::public_network;
    TlsInfo tls;
    // A secret of this session, which only the gate knows: it sends it to smtpd as
    // the first line of its own connection (gate_token_line), and only the session
    // that shows it gets the identity. The key alone is public (/proc/net/tcp): a
    // local process could send smtpd a PROXY header naming it.
    std::string token;
};

// The verb of the gate's token line. smtpd answers it "500 5.5.1 Command
// unrecognized" (the gate swallows that) but reports the line to the filter first.
inline constexpr std::string_view gate_token_verb = "X-AMTP-GATE";
std::string gate_token_line(std::string_view token);
// The token of a reported command line, if it is the gate's token line.
std::optional<std::string> gate_token_of(std::string_view command);
// A new token: 128 bits from OpenSSL's random generator, as hex.
std::string new_gate_token();

// "R\t..." for a registration, "U\t..." when the gate's session is over.
std::string encode_registration(const Registration& r);
std::string encode_unregistration(const SessionKey& key);

struct GateMessage {
    bool registration = false;   // false: unregistration (only `key` is set)
    Registration record;
};
// nullopt for anything malformed: the filter ignores the line (and logs it).
std::optional<GateMessage> decode_gate_line(std::string_view line);

// The configuration the filter runs with, sent first on every channel connection: the
// gate (root) reads the INI and policy files, the filter (smtpd's unprivileged filter
// user) needs no access to them. Paths are kept so relative names resolve as the
// files' own directory says.
struct SharedConfig {
    std::string ini_path;
    std::string ini_text;
    std::string policy_path;     // empty: no policy file
    std::string policy_text;
};
std::string encode_config(const SharedConfig& c);
std::optional<SharedConfig> decode_config_line(std::string_view line);


} // namespace amtp::opensmtpd
