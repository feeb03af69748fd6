#include "amtpd/runtime.hpp"

#include "net/tls_context.hpp"

namespace amtp::amtpd {

std::shared_ptr<const Runtime> make_runtime(Settings settings)
{
    auto rt = std::make_shared<Runtime>();
    rt->settings = std::move(settings);
    const Settings& s = rt->settings;
    rt->policy = std::make_shared<const Policy>(s.policy.file.empty() ? Policy{} : Policy::load_file(s.policy.file));
    rt->trust = TrustStore::load(net::trust_options(s, rt->policy->private_networks));
    rt->public_config = std::make_shared<const ServerConfig>(
        make_server_config(s, rt->policy, ListenerKind::public_network));
    rt->private_config = std::make_shared<const ServerConfig>(
        make_server_config(s, rt->policy, ListenerKind::private_network));
    rt->public_tls = std::make_shared<boost::asio::ssl::context>(
        net::make_server_context(s, ListenerKind::public_network).release());
    rt->private_tls = std::make_shared<boost::asio::ssl::context>(
        net::make_server_context(s, ListenerKind::private_network).release());
    rt->client_tls = std::shared_ptr<SSL_CTX>(net::make_client_context(s).release(), SSL_CTX_free);
    return rt;
}

std::shared_ptr<const Runtime> load_runtime(const std::string& config_file)
{
    return make_runtime(load_settings(config_file));
}

} // namespace amtp::amtpd
