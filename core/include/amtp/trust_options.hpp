// The trust a host verifies peers against: the INI file's [tls] trust settings and the
// policy's private networks, put together in one place so that amtpd, amtp-send and
// every adapter trust exactly the same certificates for the same configuration.
#pragma once

#include "amtp/settings.hpp"
#include "amtp/tls_identity.hpp"

#include <vector>

namespace amtp {

// tls.trusted-ca, tls.private-ca, tls.crl and tls.require-client-eku, with
// `private_networks` from the policy file. Pure: reads no file (TrustStore::load does).
TrustOptions trust_options(const Settings& settings, const std::vector<PrivateNetwork>& private_networks);

} // namespace amtp
