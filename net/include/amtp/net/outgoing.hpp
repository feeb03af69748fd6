// Outgoing AMTP delivery of one message to one recipient domain (draft s4.3): SRV
// lookup of _amtp._tcp.<domain> (no MX or A fallback), each target in RFC 2782 order,
// TLS with our certificate, the server certificate checked against the SRV target,
// then the core's ClientSession. Blocking, with a timeout on every step: used by
// amtp-send and the queue runner's worker threads.
#pragma once

#include "amtp/client_session.hpp"
#include "amtp/log.hpp"
#include "amtp/resolver.hpp"
#include "amtp/settings.hpp"
#include "amtp/tls_identity.hpp"

#include <openssl/ssl.h>

#include <atomic>
#include <string>
#include <vector>

namespace amtp::net {

struct DomainDelivery {
    std::vector<RecipientOutcome> outcomes;  // one per recipient of the message
    bool mpc_denied = false;                 // server declared a DENY for our MPC: no retry, bounce
    std::string server;                      // "target[address]:port" that answered, if any
};

// `cancel`, when given and set (the server is stopping), ends the attempt within a
// fraction of a second, as a temporary failure.
DomainDelivery deliver_to_domain(const Settings& settings, Resolver& resolver, const TrustStore& trust,
                                 SSL_CTX* client_tls, const OutgoingMessage& message, const std::string& domain,
                                 const LogSink& log, const std::atomic<bool>* cancel = nullptr);

} // namespace amtp::net
