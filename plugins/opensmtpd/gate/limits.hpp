// The gate's connection limits (limits.max-connections, limits.max-connections-per-ip),
// sans-I/O. A connection past them is closed at once, before any TLS handshake: on an
// implicit-TLS port no SMTP reply can be written in clear (the client's first bytes are
// a ClientHello), and a handshake for a connection that will be refused anyway would
// let a flood of connections cost the gate a private-key operation each.
#pragma once

#include "amtp/address.hpp"

#include <cstddef>
#include <map>
#include <string_view>

namespace amtp::opensmtpd {

class ConnectionLimits {
public:
    // An IPv6 client is counted per /64: one host usually holds a whole /64 (SLAAC,
    // privacy addresses), so counting single addresses would not limit it at all.
    // Fixed here: the shared settings have no option for the prefix length.
    static constexpr unsigned ipv6_prefix = 64;

    enum class Refusal { none, max_connections, max_connections_per_ip };

    ConnectionLimits(unsigned max_connections, unsigned max_per_source)
        : max_total_(max_connections), max_per_source_(max_per_source)
    {
    }
    // Counts the connection when it is admitted (then release() it once it ends).
    Refusal admit(const IpAddress& peer);
    void release(const IpAddress& peer);
    std::size_t total() const { return total_; }

    // The address a peer is counted under: itself for IPv4, its /64 for IPv6.
    static IpAddress source_of(const IpAddress& peer);
    // The limit's option name, for the log ("max-connections-per-ip").
    static std::string_view name(Refusal r);

private:
    unsigned max_total_;
    unsigned max_per_source_;
    std::size_t total_ = 0;
    std::map<IpAddress, unsigned> per_source_;
};

} // namespace amtp::opensmtpd
