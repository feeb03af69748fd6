#include "amtpd/runtime.hpp"

#include "amtp/net/tls_context.hpp"

#include "amtp/errors.hpp"
#include "amtp/site.hpp"

namespace amtp::amtpd {

std::shared_ptr<const Runtime> make_runtime(Settings settings, const Runtime* previous)
{
    auto rt = std::make_shared<Runtime>();
    rt->settings = std::move(settings);
    const Settings& s = rt->settings;
    if (!s.tls.key.empty()) {
        net::PrivateKeyFile k = net::read_private_key(s.tls.key);
        if (!k.key && k.denied && previous && previous->key && previous->settings.tls.key == s.tls.key) {
            k.key = previous->key;
            rt->key_kept = true;
        }
        if (!k.key)
            throw ConfigError(s.source, 0, "tls.key", k.error);
        rt->key = std::move(k.key);
    }
    // The policy, trust store and listener configurations as every front-end loads them.
    const auto site = Site::load(s);
    rt->policy = site->policy;
    rt->trust = site->trust;
    rt->public_config = site->public_config;
    rt->private_config = site->private_config;
    // Resumption is safe here: every Connection attaches its TicketBinding, so a
    // resumed session keeps the identity verified for that listener and address.
    const auto resumption = net::Resumption::bound_tickets;
    // tls.ticket-keys is read here, at start and at every reload, once for both
    // listeners. It is never kept from the previous runtime as tls.key may be: a
    // rotation that silently did not happen would leave this host out of its farm.
    if (!s.tls.ticket_keys.empty())
        rt->ticket_keys = std::make_shared<const TicketKeys>(read_ticket_keys(s.tls.ticket_keys));
    rt->public_tls = std::make_shared<boost::asio::ssl::context>(
        net::make_server_context(s, ListenerKind::public_network, resumption, rt->key.get(), rt->ticket_keys)
            .release());
    rt->private_tls = std::make_shared<boost::asio::ssl::context>(
        net::make_server_context(s, ListenerKind::private_network, resumption, rt->key.get(), rt->ticket_keys)
            .release());
    rt->client_tls = std::shared_ptr<SSL_CTX>(net::make_client_context(s, rt->key.get()).release(), SSL_CTX_free);
    return rt;
}

std::shared_ptr<const Runtime> load_runtime(const std::string& config_file, const Runtime* previous)
{
    return make_runtime(load_settings(config_file), previous);
}

} // namespace amtp::amtpd
