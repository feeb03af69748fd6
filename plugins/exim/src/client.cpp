// Exim as an AMTP client: the router's SRV lookup, the server certificate check and
// the MPC an outgoing message carries, each one a thin use of the core.
#include "exim_module.hpp"

#include "amtp/handles.hpp"
#include "amtp/log.hpp"

#include <openssl/x509.h>

namespace amtp::exim {

Route route_domain(std::string_view domain, const SrvLookup& srv, const AddressLookup& addresses)
{
    Route route;
    const SrvResult s = srv(std::string(domain));
    route.status = s.status;
    route.error = s.error;
    if (s.status != DnsStatus::answer)
        return route;
    bool temporary = false;
    for (const auto& target : s.targets) {
        const DnsResult a = addresses(target.target);
        if (a.status == DnsStatus::temporary)
            temporary = true;
        for (const auto& text : a.records) {
            const auto ip = IpAddress::parse(text);
            // IPv4 only for now: an "[ipv6]:port" item in route_data was not taken by
            // Exim 4.96's manualroute in our tests (docs/exim.md, limits).
            if (!ip || !ip->is_v4())
                continue;
            route.hops.push_back(Route::Hop{*ip, target.port, target.target});
            // Exim's host list item "ip:port", its colon doubled in a colon-separated
            // list; no blanks, which would end route_data's host list.
            route.hosts += (route.hosts.empty() ? "" : ":") + ip->str() + "::" + std::to_string(target.port);
        }
    }
    if (route.hops.empty()) {
        // Targets without addresses: temporary if a lookup was, else nothing to reach.
        route.status = temporary ? DnsStatus::temporary : DnsStatus::negative;
        route.error = "no address for the SRV targets";
    }
    return route;
}

std::string hop_target(const std::vector<Route::Hop>& hops, const IpAddress& address, unsigned port)
{
    for (const auto& h : hops)
        if (h.address == address && h.port == port)
            return h.target;
    return {};
}

IdentityResult check_server(const Site& site, const std::vector<std::string>& der_chain,
                            std::string_view target, std::time_t now)
{
    X509StackPtr chain(sk_X509_new_null());
    for (const auto& der : der_chain) {
        const auto* p = reinterpret_cast<const unsigned char*>(der.data());
        X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
        if (cert && sk_X509_push(chain.get(), cert.get()) > 0)
            cert.release(); // the stack owns it now
    }
    return site.trust->verify_server(chain.get(), target, now);
}

std::string outgoing_mpc(const Site& site, std::string_view mpc_header, std::string_view sender)
{
    const OutgoingMpc mpc = amtp::outgoing_mpc(site.policy.get(), mpc_header, sender);
    return mpc.value ? mpc.value->str() : std::string();
}

} // namespace amtp::exim
