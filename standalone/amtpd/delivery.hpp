// Storing an accepted message: local recipients into their Maildirs with the MPC field
// after the trace fields (draft s4.4.4); other recipients (accepted only on private
// listeners) into the outgoing queue, where the MPC travels with the envelope and is
// sent as the MPC= parameter, never as a header (draft s5.2). Runs on a storage
// thread: it blocks on fsync.
#pragma once

#include "amtp/queue.hpp"
#include "amtp/reply.hpp"
#include "amtp/server_session.hpp"
#include "amtp/settings.hpp"

#include <ctime>
#include <string>

namespace amtp::amtpd {

struct StorageOutcome {
    Reason failure = Reason::none;   // none, storage_full or storage_temporary
    std::string detail;
    std::string queued_id;           // set when some recipients went to the queue
};

StorageOutcome store_message(const Settings& settings, Queue& queue, const DeliveryRequest& request);

// A bounce (or any locally generated message) for `recipient` with `mpc`: into the
// Maildir when the domain is local, else into the queue with the null sender.
StorageOutcome store_generated(const Settings& settings, Queue& queue, const std::string& recipient,
                               const MpcValue& mpc, const std::string& message);

} // namespace amtp::amtpd
