#include "amtp/trust_options.hpp"

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

} // namespace amtp
