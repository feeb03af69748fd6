// A site: the shared INI settings with what they name (the policy, the trust store,
// the local recipients), loaded once and read by every session of every front-end.
// amtpd, the OpenSMTPD gate, the Exim module and the Haraka addon all load it here, so
// they trust the same CAs and apply the same policy from the same file.
#pragma once

#include "amtp/address.hpp"
#include "amtp/local_delivery.hpp"
#include "amtp/policy.hpp"
#include "amtp/rulebook.hpp"
#include "amtp/settings.hpp"
#include "amtp/tls_identity.hpp"
#include "amtp/trust_options.hpp"

#include <memory>
#include <string>

namespace amtp {

// What the MTA in front lets reach the core: MPC= on MAIL (amtpd, OpenSMTPD, Haraka),
// or only the AMTP-MPC header carrier, profile B5 (Exim refuses unknown MAIL
// parameters before any ACL runs), whatever listen.header-carrier says.
enum class MpcCarrier { parameter, header_only };

struct Site {
    Settings settings;
    std::shared_ptr<const Policy> policy;               // an empty Policy without policy.file
    std::shared_ptr<const TrustStore> trust;
    std::shared_ptr<const ServerConfig> public_config;
    std::shared_ptr<const ServerConfig> private_config;

    // Throws ConfigError (file, line, key) when the settings, the policy, a CA file or
    // the recipients list is unusable.
    static std::shared_ptr<const Site> load(Settings settings, MpcCarrier carrier = MpcCarrier::parameter);
    static std::shared_ptr<const Site> load(const std::string& config_file,
                                            MpcCarrier carrier = MpcCarrier::parameter);

    // Which rules the listener at local address:port applies: private for a
    // listen.private endpoint, public otherwise (the safe default).
    ListenerKind listener(const IpAddress& local, unsigned port) const;
    const std::shared_ptr<const ServerConfig>& config(ListenerKind kind) const
    {
        return kind == ListenerKind::private_network ? private_config : public_config;
    }
};

} // namespace amtp
