// Hand-off to a local delivery agent by LMTP (RFC 2033), for delivery.lmtp: one
// transaction, one reply per recipient after DATA. Blocking with a timeout on every
// step; runs on a storage thread.
#pragma once

#include "amtp/reply.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace amtp::net {

struct LmtpResult {
    bool ok = false;                  // every recipient accepted
    bool temporary = true;            // a failure that may pass on a retry
    std::string detail;               // the first failure, for the log and the reply
};

// `target` is "unix:/path" or "host:port" (as settings.delivery.lmtp writes it).
LmtpResult deliver_lmtp(const std::string& target, const std::string& lhlo_name, const std::string& sender,
                        const std::vector<std::string>& recipients, const std::vector<std::string_view>& parts,
                        std::chrono::seconds timeout);

} // namespace amtp::net
