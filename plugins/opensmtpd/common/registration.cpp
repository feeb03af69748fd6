#include "common/registration.hpp"

#include <openssl/rand.h>

#include <charconv>
#include <stdexcept>
#include <vector>

namespace amtp::opensmtpd {

namespace {

// Reversible escaping: a field never holds a tab, CR, LF or a lone backslash.
std::string escape(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
        case '\\': out += "\\\\"; break;
        case '\t': out += "\\t"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        default: out += c;
        }
    }
    return out;
}

std::optional<std::string> unescape(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\') {
            out += s[i];
            continue;
        }
        if (++i == s.size())
            return std::nullopt;
        switch (s[i]) {
        case '\\': out += '\\'; break;
        case 't': out += '\t'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        default: return std::nullopt;
        }
    }
    return out;
}

std::vector<std::string_view> split(std::string_view s, char sep)
{
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        const auto pos = s.find(sep, start);
        if (pos == std::string_view::npos) {
            out.push_back(s.substr(start));
            return out;
        }
        out.push_back(s.substr(start, pos - start));
        start = pos + 1;
    }
}

template <typename T>
std::optional<T> number(std::string_view s)
{
    T v{};
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty())
        return std::nullopt;
    return v;
}

const char* trust_name(TrustKind t)
{
    switch (t) {
    case TrustKind::public_ca: return "public";
    case TrustKind::private_ca: return "private";
    case TrustKind::pinned: return "pinned";
    }
    return "public";
}

constexpr std::size_t record_fields = 18;

} // namespace

std::string SessionKey::str() const
{
    return address.is_v4() ? address.str() + ":" + std::to_string(port)
                           : "[" + address.str() + "]:" + std::to_string(port);
}

std::optional<SessionKey> SessionKey::parse(std::string_view text)
{
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0)
        return std::nullopt;
    const auto port = number<std::uint16_t>(text.substr(colon + 1));
    auto host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    const auto address = IpAddress::parse(host);
    if (!port || !address)
        return std::nullopt;
    return SessionKey{*address, *port};
}

std::string encode_registration(const Registration& r)
{
    const IdentityResult& id = r.tls.identity;
    const Identity empty;
    const Identity& i = id.identity ? *id.identity : empty;
    std::string names;
    for (const auto& n : i.names)
        names += (names.empty() ? "" : ",") + n;
    const std::vector<std::string> fields = {
        "R",
        r.key.address.str(),
        std::to_string(r.key.port),
        r.listener == ListenerKind::public_network ? "public" : "private",
        id.ok() ? "none" : reason_name(id.reason == Reason::none ? Reason::cert_invalid : id.reason),
        r.tls.version,
        r.tls.cipher,
        trust_name(i.trust),
        i.private_network,
        i.subject,
        i.issuer,
        i.serial,
        i.sha256,
        std::to_string(static_cast<long long>(i.not_before)),
        std::to_string(static_cast<long long>(i.not_after)),
        names,
        id.detail,
        r.token,
    };
    std::string line;
    for (const auto& f : fields)
        line += (line.empty() ? "" : "\t") + escape(f);
    return line + "\n";
}

std::string encode_unregistration(const SessionKey& key)
{
    return "U\t" + key.address.str() + "\t" + std::to_string(key.port) + "\n";
}

std::string encode_config(const SharedConfig& c)
{
    return "C\t" + escape(c.ini_path) + "\t" + escape(c.ini_text) + "\t" + escape(c.policy_path) + "\t" +
           escape(c.policy_text) + "\n";
}

std::optional<SharedConfig> decode_config_line(std::string_view line)
{
    if (!line.empty() && line.back() == '\n')
        line.remove_suffix(1);
    const auto raw = split(line, '\t');
    if (raw.size() != 5 || raw[0] != "C")
        return std::nullopt;
    std::vector<std::string> f;
    for (std::size_t i = 1; i < raw.size(); ++i) {
        auto v = unescape(raw[i]);
        if (!v)
            return std::nullopt;
        f.push_back(std::move(*v));
    }
    return SharedConfig{f[0], f[1], f[2], f[3]};
}

std::optional<GateMessage> decode_gate_line(std::string_view line)
{
    if (!line.empty() && line.back() == '\n')
        line.remove_suffix(1);
    const auto raw = split(line, '\t');
    std::vector<std::string> f;
    for (auto part : raw) {
        auto v = unescape(part);
        if (!v)
            return std::nullopt;
        f.push_back(std::move(*v));
    }
    if (f.size() < 3)
        return std::nullopt;
    const auto address = IpAddress::parse(f[1]);
    const auto port = number<std::uint16_t>(f[2]);
    if (!address || !port)
        return std::nullopt;
    GateMessage m;
    m.record.key = SessionKey{*address, *port};
    if (f[0] == "U" && f.size() == 3)
        return m;
    if (f[0] != "R" || f.size() != record_fields)
        return std::nullopt;
    m.registration = true;
    Registration& r = m.record;
    if (f[3] == "public")
        r.listener = ListenerKind::public_network;
    else if (f[3] == "private")
        r.listener = ListenerKind::private_network;
    else
        return std::nullopt;
    const auto reason = reason_from_name(f[4]);
    if (!reason)
        return std::nullopt;
    r.tls.version = f[5];
    r.tls.cipher = f[6];
    r.tls.identity.detail = f[16];
    r.token = f[17];
    if (*reason != Reason::none) {
        r.tls.identity.reason = *reason;
        return m;
    }
    Identity i;
    if (f[7] == "public")
        i.trust = TrustKind::public_ca;
    else if (f[7] == "private")
        i.trust = TrustKind::private_ca;
    else if (f[7] == "pinned")
        i.trust = TrustKind::pinned;
    else
        return std::nullopt;
    i.private_network = f[8];
    i.subject = f[9];
    i.issuer = f[10];
    i.serial = f[11];
    i.sha256 = f[12];
    const auto nb = number<long long>(f[13]);
    const auto na = number<long long>(f[14]);
    if (!nb || !na)
        return std::nullopt;
    i.not_before = static_cast<std::time_t>(*nb);
    i.not_after = static_cast<std::time_t>(*na);
    if (!f[15].empty())
        for (auto n : split(f[15], ','))
            i.names.emplace_back(n);
    r.tls.identity.identity = std::move(i);
    return m;
}

std::string gate_token_line(std::string_view token)
{
    return std::string(gate_token_verb) + " " + std::string(token) + "\r\n";
}

std::optional<std::string> gate_token_of(std::string_view command)
{
    while (!command.empty() && (command.back() == '\r' || command.back() == '\n'))
        command.remove_suffix(1);
    if (command.size() <= gate_token_verb.size() + 1 || command.substr(0, gate_token_verb.size()) != gate_token_verb ||
        command[gate_token_verb.size()] != ' ')
        return std::nullopt;
    return std::string(command.substr(gate_token_verb.size() + 1));
}

std::string new_gate_token()
{
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        throw std::runtime_error("no random bytes for a session token");
    static constexpr char hex[] = "0123456789abcdef";
    std::string token;
    for (unsigned char b : bytes) {
        token += hex[b >> 4];
        token += hex[b & 0xfu];
    }
    return token;
}

} // namespace amtp::opensmtpd
