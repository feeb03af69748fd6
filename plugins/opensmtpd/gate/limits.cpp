#include "gate/limits.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace amtp::opensmtpd {

IpAddress ConnectionLimits::source_of(const IpAddress& peer)
{
    if (peer.is_v4())
        return peer;
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    std::memcpy(sa.sin6_addr.s6_addr, peer.bytes(), ipv6_prefix / 8);
    const auto masked = IpAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&sa));
    return masked ? *masked : peer;
}

std::string_view ConnectionLimits::name(Refusal r)
{
    switch (r) {
    case Refusal::max_connections: return "max-connections";
    case Refusal::max_connections_per_ip: return "max-connections-per-ip";
    case Refusal::none: break;
    }
    return "none";
}

ConnectionLimits::Refusal ConnectionLimits::admit(const IpAddress& peer)
{
    if (total_ >= max_total_)
        return Refusal::max_connections;
    unsigned& count = per_source_[source_of(peer)];
    if (count >= max_per_source_) {
        if (count == 0)
            per_source_.erase(source_of(peer));
        return Refusal::max_connections_per_ip;
    }
    ++count;
    ++total_;
    return Refusal::none;
}

void ConnectionLimits::release(const IpAddress& peer)
{
    auto it = per_source_.find(source_of(peer));
    if (it == per_source_.end())
        return;
    --total_;
    if (--it->second == 0)
        per_source_.erase(it);
}

} // namespace amtp::opensmtpd
