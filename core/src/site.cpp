#include "amtp/site.hpp"

namespace amtp {

TrustOptions trust_options(const Settings& s, const std::vector<PrivateNetwork>& private_networks)
{
    TrustOptions t;
    t.public_ca_files = s.tls.trusted_ca;
    t.private_ca_files = s.tls.private_ca;
    t.crl_file = s.tls.crl;
    t.require_client_eku = s.tls.require_client_eku;
    t.private_networks = private_networks;
    return t;
}

std::shared_ptr<const Site> Site::load(Settings settings)
{
    auto site = std::make_shared<Site>();
    site->settings = std::move(settings);
    const Settings& s = site->settings;
    site->policy = std::make_shared<const Policy>(s.policy.file.empty() ? Policy{} : Policy::load_file(s.policy.file));
    site->trust = TrustStore::load(trust_options(s, site->policy->private_networks));
    site->public_config =
        std::make_shared<const ServerConfig>(make_server_config(s, site->policy, ListenerKind::public_network));
    site->private_config =
        std::make_shared<const ServerConfig>(make_server_config(s, site->policy, ListenerKind::private_network));
    return site;
}

std::shared_ptr<const Site> Site::load(const std::string& config_file)
{
    return load(load_settings(config_file));
}

ListenerKind Site::listener(const IpAddress& local, unsigned port) const
{
    for (const auto& e : settings.listen.private_endpoints)
        if (e.port == port && e.address == local)
            return ListenerKind::private_network;
    return ListenerKind::public_network;
}

} // namespace amtp
