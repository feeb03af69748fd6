#include "amtp/connection_limits.hpp"

namespace amtp {

std::string_view ConnectionLimits::name(Refusal r)
{
    switch (r) {
    case Refusal::max_connections: return "max-connections";
    case Refusal::max_connections_per_ip: return "max-connections-per-ip";
    case Refusal::none: break;
    }
    return "none";
}

ConnectionLimits::Admission ConnectionLimits::admit(const IpAddress& peer)
{
    Admission a;
    a.key = connection_limit_key(limits_, peer);
    const auto counted = per_source_.find(a.key);
    const unsigned from_peer = counted == per_source_.end() ? 0 : counted->second;
    if (total_ >= limits_.max_connections)
        a.refusal = Refusal::max_connections;
    else if (from_peer >= limits_.max_connections_per_ip)
        a.refusal = Refusal::max_connections_per_ip;
    else {
        ++per_source_[a.key];
        ++total_;
    }
    return a;
}

void ConnectionLimits::release(const IpAddress& key)
{
    const auto it = per_source_.find(key);
    if (it == per_source_.end())
        return;
    --total_;
    if (--it->second == 0)
        per_source_.erase(it);
}

} // namespace amtp
