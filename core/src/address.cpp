#include "amtp/address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>

namespace amtp {

namespace {
constexpr std::array<std::uint8_t, 12> v4_mapped_prefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
}

std::optional<IpAddress> IpAddress::parse(std::string_view text)
{
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
        text = text.substr(1, text.size() - 2);
    // inet_pton reads a C string: an embedded NUL would end the text early and let
    // whatever follows it through unread.
    if (text.empty() || text.size() > INET6_ADDRSTRLEN || text.find('\0') != std::string_view::npos)
        return std::nullopt;
    const std::string s(text);
    IpAddress a;
    if (inet_pton(AF_INET, s.c_str(), a.bytes_.data()) == 1) {
        a.v4_ = true;
        return a;
    }
    std::array<std::uint8_t, 16> b{};
    if (inet_pton(AF_INET6, s.c_str(), b.data()) != 1)
        return std::nullopt;
    if (std::memcmp(b.data(), v4_mapped_prefix.data(), v4_mapped_prefix.size()) == 0) {
        a.v4_ = true;
        std::memcpy(a.bytes_.data(), b.data() + 12, 4);
        return a;
    }
    a.v4_ = false;
    a.bytes_ = b;
    return a;
}

std::optional<IpAddress> IpAddress::from_sockaddr(const sockaddr* sa)
{
    if (!sa)
        return std::nullopt;
    char buf[INET6_ADDRSTRLEN] = {};
    if (sa->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    } else if (sa->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    } else {
        return std::nullopt;
    }
    return parse(buf);
}

std::string IpAddress::str() const
{
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(v4_ ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
    return buf;
}

bool IpAddress::is_loopback() const
{
    if (v4_)
        return bytes_[0] == 127;
    static constexpr std::array<std::uint8_t, 16> one{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return bytes_ == one;
}

std::optional<IpNetwork> IpNetwork::parse(std::string_view text)
{
    IpNetwork n;
    const auto slash = text.find('/');
    const auto base = IpAddress::parse(text.substr(0, slash));
    if (!base)
        return std::nullopt;
    n.base_ = *base;
    const unsigned max = base->is_v4() ? 32 : 128;
    n.prefix_ = max;
    if (slash != std::string_view::npos) {
        const auto digits = text.substr(slash + 1);
        unsigned p = 0;
        const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), p);
        if (digits.empty() || ec != std::errc() || ptr != digits.data() + digits.size() || p > max)
            return std::nullopt;
        n.prefix_ = p;
    }
    return n;
}

IpAddress IpAddress::masked(unsigned prefix) const
{
    IpAddress out = *this;
    for (std::size_t i = 0; i < out.bytes_.size(); ++i) {
        const unsigned keep = prefix >= 8 * (i + 1) ? 8 : prefix > 8 * i ? prefix - 8 * static_cast<unsigned>(i) : 0;
        out.bytes_[i] &= static_cast<std::uint8_t>(0xff00u >> keep);
    }
    return out;
}

bool IpNetwork::contains(const IpAddress& a) const
{
    if (a.is_v4() != base_.is_v4())
        return false;
    unsigned bits = prefix_;
    for (std::size_t i = 0; bits > 0; ++i) {
        const unsigned take = bits >= 8 ? 8 : bits;
        const std::uint8_t mask = static_cast<std::uint8_t>(0xff00u >> take);
        if ((a.bytes()[i] & mask) != (base_.bytes()[i] & mask))
            return false;
        bits -= take;
    }
    return true;
}

std::string IpNetwork::str() const
{
    return base_.str() + "/" + std::to_string(prefix_);
}

std::optional<Endpoint> Endpoint::parse(std::string_view text)
{
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return std::nullopt;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon)
            return std::nullopt; // bare IPv6 needs brackets
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    const auto addr = IpAddress::parse(host);
    unsigned p = 0;
    const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (!addr || port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p == 0 || p > 65535)
        return std::nullopt;
    return Endpoint{*addr, static_cast<std::uint16_t>(p)};
}

std::string Endpoint::str() const
{
    return address.is_v4() ? address.str() + ":" + std::to_string(port)
                           : "[" + address.str() + "]:" + std::to_string(port);
}

} // namespace amtp
