#include "amtp/site.hpp"

#include <algorithm>
#include <cstdint>

namespace amtp {

std::shared_ptr<const Site> Site::load(Settings settings, MpcCarrier carrier)
{
    auto site = std::make_shared<Site>();
    site->settings = std::move(settings);
    const Settings& s = site->settings;
    site->policy = std::make_shared<const Policy>(s.policy.file.empty() ? Policy{} : Policy::load_file(s.policy.file));
    site->trust = TrustStore::load(trust_options(s, site->policy->private_networks));
    for (const auto kind : {ListenerKind::public_network, ListenerKind::private_network}) {
        ServerConfig c = make_server_config(s, site->policy, kind);
        if (carrier == MpcCarrier::header_only)
            c.accept_header_carrier = true;
        (kind == ListenerKind::public_network ? site->public_config : site->private_config) =
            std::make_shared<const ServerConfig>(std::move(c));
    }
    return site;
}

std::shared_ptr<const Site> Site::load(const std::string& config_file, MpcCarrier carrier)
{
    return load(load_settings(config_file), carrier);
}

ListenerKind Site::listener(const IpAddress& local, unsigned port) const
{
    for (const auto& e : settings.listen.private_endpoints) {
        if (e.port != port)
            continue;
        // A wildcard endpoint ("private = 0.0.0.0:2687") accepts connections to every
        // local address of its family (:: to all, dual-stack): a host reports the one
        // the client reached.
        const bool wildcard = std::all_of(e.address.bytes(), e.address.bytes() + e.address.size(),
                                          [](std::uint8_t b) { return b == 0; });
        if (e.address == local || (wildcard && (!e.address.is_v4() || local.is_v4())))
            return ListenerKind::private_network;
    }
    return ListenerKind::public_network;
}

} // namespace amtp
