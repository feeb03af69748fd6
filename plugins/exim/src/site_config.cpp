// Loading the shared configuration once per Exim daemon (profile B8).
#include "exim_module.hpp"

#include "amtp/names.hpp"

#include <algorithm>

namespace amtp::exim {

std::shared_ptr<const SiteConfig> SiteConfig::load(const std::string& path)
{
    auto site = std::make_shared<SiteConfig>();
    site->path = path;
    site->settings = load_settings(path);
    if (!site->settings.policy.file.empty())
        site->policy = std::make_shared<const Policy>(Policy::load_file(site->settings.policy.file));
    // The same trust as amtpd's (standalone/net/tls_context.cpp): public CAs for public
    // listeners; private CAs and the policy's private networks for private ones.
    TrustOptions t;
    t.public_ca_files = site->settings.tls.trusted_ca;
    t.private_ca_files = site->settings.tls.private_ca;
    t.crl_file = site->settings.tls.crl;
    t.require_client_eku = site->settings.tls.require_client_eku;
    if (site->policy)
        t.private_networks = site->policy->private_networks;
    site->trust = TrustStore::load(t);
    site->recipients = LocalRecipients::from_settings(site->settings);
    return site;
}

ListenerKind SiteConfig::listener(const IpAddress& local, unsigned port) const
{
    for (const auto& e : settings.listen.private_endpoints)
        if (e.port == port && e.address == local)
            return ListenerKind::private_network;
    return ListenerKind::public_network;
}

bool SiteConfig::is_local_domain(std::string_view domain) const
{
    const auto name = normalize_host_name(domain);
    if (!name)
        return false;
    const auto& d = settings.delivery.local_domains;
    return std::find(d.begin(), d.end(), *name) != d.end();
}

} // namespace amtp::exim
