// Hand-off to a local delivery agent by LMTP (RFC 2033), for delivery.lmtp: one
// transaction, one reply per recipient after DATA. Blocking with a timeout on every
// step; runs on a storage thread.
#pragma once

#include "amtp/local_delivery.hpp"
#include "amtp/reply.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace amtp::net {

// One outcome per recipient, in order (RFC 2033 s4.2: after DATA the agent answers
// for each accepted recipient). A recipient the agent refused at RCPT, or whose reply
// after the data is 4xx/5xx, fails alone; a broken dialogue makes every recipient not
// yet answered a temporary failure.
// `target` is "unix:/path" or "host:port" (as settings.delivery.lmtp writes it).
std::vector<LocalOutcome> deliver_lmtp(const std::string& target, const std::string& lhlo_name,
                                       const std::string& sender, const std::vector<std::string>& recipients,
                                       const std::vector<std::string_view>& parts, std::chrono::seconds timeout);

} // namespace amtp::net
