// Storing an accepted message: local recipients into their Maildirs with the MPC field
// after the trace fields (draft s4.4.4); other recipients (accepted only on private
// listeners) into the outgoing queue, where the MPC travels with the envelope and is
// sent as the MPC= parameter, never as a header (draft s5.2). Runs on a storage
// thread: it blocks on fsync.
#pragma once

#include "amtp/local_delivery.hpp"
#include "amtp/queue.hpp"
#include "amtp/reply.hpp"
#include "amtp/server_session.hpp"
#include "amtp/settings.hpp"

#include <ctime>
#include <string>

namespace amtp::amtpd {

struct StorageOutcome {
    Reason failure = Reason::none;   // none, storage_full, storage_temporary or delivery_refused
    std::string detail;              // for the log: the failure, or the recipients carried to the queue
    std::string queued_id;           // set when some recipients went to the queue
};

// Local recipients are delivered and every failed one carried per settle_delivery:
// nothing is acknowledged that is not durable, and nothing durable is refused (which
// would make the client's retry deliver it twice).
StorageOutcome store_message(const Settings& settings, Queue& queue, const DeliveryRequest& request);

// A bounce (or any locally generated message) for `recipient` with `mpc`: delivered
// locally when the domain is local (dropped, with detail, when delivery.recipients does
// not know the recipient), else into the queue with the null sender.
StorageOutcome store_generated(const Settings& settings, Queue& queue, const std::string& recipient,
                               const MpcValue& mpc, const std::string& message);

// Final delivery to local recipients: by LMTP when delivery.lmtp is set, else into
// their Maildirs; one outcome per recipient, in order.
std::vector<LocalOutcome> deliver_local(const Settings& settings, const std::string& sender,
                                        const std::vector<std::string>& recipients,
                                        const std::vector<std::string_view>& parts);

} // namespace amtp::amtpd
