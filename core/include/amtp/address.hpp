// IP addresses, networks (CIDR) and listener endpoints, parsed once and compared
// as bytes so that IPv4 and IPv6 follow one code path.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct sockaddr;

namespace amtp {

class IpAddress {
public:
    IpAddress() = default;
    // Accepts dotted IPv4 and RFC 4291 IPv6 text (optionally in [brackets]).
    static std::optional<IpAddress> parse(std::string_view text);
    static std::optional<IpAddress> from_sockaddr(const sockaddr* sa);

    bool is_v4() const { return v4_; }
    // 4 bytes for IPv4, 16 for IPv6; an IPv4-mapped IPv6 address is stored as IPv4.
    const std::uint8_t* bytes() const { return bytes_.data(); }
    std::size_t size() const { return v4_ ? 4 : 16; }
    std::string str() const;
    bool is_loopback() const;
    // The network address of this address's /prefix (bits beyond `prefix` zeroed).
    IpAddress masked(unsigned prefix) const;

    friend bool operator==(const IpAddress& a, const IpAddress& b) { return a.v4_ == b.v4_ && a.bytes_ == b.bytes_; }
    friend bool operator!=(const IpAddress& a, const IpAddress& b) { return !(a == b); }
    friend bool operator<(const IpAddress& a, const IpAddress& b)
    {
        return a.v4_ != b.v4_ ? a.v4_ : a.bytes_ < b.bytes_;
    }

private:
    bool v4_ = true;
    std::array<std::uint8_t, 16> bytes_{};
};

// "10.8.0.0/16", "2001:db8::/32", or a bare address (a /32 or /128).
class IpNetwork {
public:
    static std::optional<IpNetwork> parse(std::string_view text);
    bool contains(const IpAddress& address) const;
    std::string str() const;

private:
    IpAddress base_;
    unsigned prefix_ = 0;
};

// "127.0.0.3:2626", "[::1]:2626". The port is required.
struct Endpoint {
    IpAddress address;
    std::uint16_t port = 0;
    static std::optional<Endpoint> parse(std::string_view text);
    std::string str() const;
};

} // namespace amtp
