// Everything a connection needs that a reload (SIGHUP) may replace: settings, policy,
// trust store, listener configurations and TLS contexts. Connections keep the
// runtime they started with; new connections get the new one.
#pragma once

#include "amtp/policy.hpp"
#include "amtp/server_session.hpp"
#include "amtp/settings.hpp"
#include "amtp/ticket_keys.hpp"
#include "amtp/tls_identity.hpp"

#include <boost/asio/ssl/context.hpp>

#include <memory>

namespace amtp::amtpd {

struct Runtime {
    Settings settings;
    std::shared_ptr<const Policy> policy;
    std::shared_ptr<const TrustStore> trust;
    std::shared_ptr<const ServerConfig> public_config;
    std::shared_ptr<const ServerConfig> private_config;
    std::shared_ptr<boost::asio::ssl::context> public_tls;
    std::shared_ptr<boost::asio::ssl::context> private_tls;
    std::shared_ptr<SSL_CTX> client_tls;          // outgoing AMTP (queue runner)
    // tls.key as read when the runtime was made: a reload after dropping root reuses
    // it when the file is readable only by root (same path; a new key needs a restart).
    std::shared_ptr<EVP_PKEY> key;
    bool key_kept = false;                        // this runtime reused the previous key
    // tls.ticket-keys as read for this runtime (null: OpenSSL's random keys).
    std::shared_ptr<const TicketKeys> ticket_keys;

    const ServerConfig& config(ListenerKind k) const
    {
        return k == ListenerKind::public_network ? *public_config : *private_config;
    }
    std::shared_ptr<const ServerConfig> config_ptr(ListenerKind k) const
    {
        return k == ListenerKind::public_network ? public_config : private_config;
    }
    boost::asio::ssl::context& tls(ListenerKind k) const
    {
        return k == ListenerKind::public_network ? *public_tls : *private_tls;
    }
};

// Loads settings, policy and certificates; throws ConfigError on any problem. On a
// reload, `previous` lends its key when tls.key is unchanged and we may no longer read it.
std::shared_ptr<const Runtime> load_runtime(const std::string& config_file, const Runtime* previous = nullptr);
std::shared_ptr<const Runtime> make_runtime(Settings settings, const Runtime* previous = nullptr);

} // namespace amtp::amtpd
