// Final delivery of an accepted message into the Maildirs of its local recipients,
// with the MPC field (draft s4.4.4) after the trace fields. Runs on a storage thread:
// it blocks on fsync.
#pragma once

#include "amtp/reply.hpp"
#include "amtp/server_session.hpp"
#include "amtp/settings.hpp"

#include <string>

namespace amtp::amtpd {

struct StorageOutcome {
    Reason failure = Reason::none;   // none, storage_full or storage_temporary
    std::string detail;
};

StorageOutcome deliver_locally(const Settings& settings, const DeliveryRequest& request);

} // namespace amtp::amtpd
