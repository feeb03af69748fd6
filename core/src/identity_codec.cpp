#include "amtp/identity_codec.hpp"

#include <cstdint>

namespace amtp {

namespace {

constexpr std::string_view magic = "AMTPID1";
constexpr std::size_t max_field = 64 * 1024;

void put_u32(std::string& out, std::uint32_t v)
{
    for (int i = 3; i >= 0; --i)
        out += static_cast<char>((v >> (8 * i)) & 0xff);
}

void put_i64(std::string& out, std::int64_t v)
{
    const auto u = static_cast<std::uint64_t>(v);
    put_u32(out, static_cast<std::uint32_t>(u >> 32));
    put_u32(out, static_cast<std::uint32_t>(u & 0xffffffffu));
}

void put_str(std::string& out, std::string_view s)
{
    put_u32(out, static_cast<std::uint32_t>(s.size()));
    out.append(s.data(), s.size());
}

class Reader {
public:
    explicit Reader(std::string_view d) : d_(d) {}
    bool u32(std::uint32_t& v)
    {
        if (d_.size() < 4)
            return false;
        v = 0;
        for (int i = 0; i < 4; ++i)
            v = (v << 8) | static_cast<unsigned char>(d_[static_cast<std::size_t>(i)]);
        d_.remove_prefix(4);
        return true;
    }
    bool i64(std::int64_t& v)
    {
        std::uint32_t hi = 0, lo = 0;
        if (!u32(hi) || !u32(lo))
            return false;
        v = static_cast<std::int64_t>((static_cast<std::uint64_t>(hi) << 32) | lo);
        return true;
    }
    bool str(std::string& s)
    {
        std::uint32_t n = 0;
        if (!u32(n) || n > max_field || d_.size() < n)
            return false;
        s.assign(d_.data(), n);
        d_.remove_prefix(n);
        return true;
    }
    bool done() const { return d_.empty(); }

private:
    std::string_view d_;
};

} // namespace

std::string encode_identity(const BoundIdentity& b)
{
    std::string out(magic);
    const Identity& id = b.identity;
    put_u32(out, static_cast<std::uint32_t>(b.listener));
    put_str(out, b.peer.str());
    put_u32(out, static_cast<std::uint32_t>(id.trust));
    put_str(out, id.private_network);
    put_str(out, id.subject);
    put_str(out, id.issuer);
    put_str(out, id.serial);
    put_str(out, id.sha256);
    put_i64(out, id.not_before);
    put_i64(out, id.not_after);
    put_u32(out, static_cast<std::uint32_t>(id.names.size()));
    for (const auto& n : id.names)
        put_str(out, n);
    return out;
}

std::optional<BoundIdentity> decode_identity(std::string_view data)
{
    if (data.substr(0, magic.size()) != magic)
        return std::nullopt;
    Reader r(data.substr(magic.size()));
    BoundIdentity b;
    Identity& id = b.identity;
    std::uint32_t listener = 0, trust = 0, count = 0;
    std::string peer;
    std::int64_t nb = 0, na = 0;
    if (!r.u32(listener) || listener > 1 || !r.str(peer) || !r.u32(trust) || trust > 2 || !r.str(id.private_network) ||
        !r.str(id.subject) || !r.str(id.issuer) || !r.str(id.serial) || !r.str(id.sha256) || !r.i64(nb) ||
        !r.i64(na) || !r.u32(count) || count > 1024)
        return std::nullopt;
    for (std::uint32_t i = 0; i < count; ++i) {
        std::string n;
        if (!r.str(n))
            return std::nullopt;
        id.names.push_back(std::move(n));
    }
    const auto address = IpAddress::parse(peer);
    if (!r.done() || !address)
        return std::nullopt;
    b.listener = static_cast<ListenerKind>(listener);
    b.peer = *address;
    id.trust = static_cast<TrustKind>(trust);
    id.not_before = static_cast<std::time_t>(nb);
    id.not_after = static_cast<std::time_t>(na);
    return b;
}

IdentityResult resumed_identity(std::string_view ticket_data, ListenerKind listener, const IpAddress& peer,
                                std::time_t now)
{
    IdentityResult r;
    const auto b = decode_identity(ticket_data);
    if (!b) {
        r.reason = Reason::cert_invalid;
        r.detail = "resumed TLS session without a verified identity";
    } else if (b->listener != listener || b->peer != peer) {
        r.reason = Reason::cert_invalid;
        r.detail = "resumed TLS session was verified for another listener or address";
    } else if (now > b->identity.not_after) {
        r.reason = Reason::cert_expired;
        r.detail = "certificate expired since the session was established";
    } else {
        r.identity = b->identity;
    }
    return r;
}

} // namespace amtp
