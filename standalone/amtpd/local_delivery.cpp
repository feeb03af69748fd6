#include "amtpd/local_delivery.hpp"

#include "amtp/maildir.hpp"
#include "amtp/trace_headers.hpp"

namespace amtp::amtpd {

StorageOutcome deliver_locally(const Settings& settings, const DeliveryRequest& request)
{
    const std::string mpc = mpc_field(request.envelope.mpc);
    for (std::size_t i = 0; i < request.envelope.recipients.size(); ++i) {
        const std::string& rcpt = request.envelope.recipients[i];
        if (!request.envelope.local[i])
            return {Reason::storage_temporary, "no relay queue for " + rcpt};
        const auto at = rcpt.rfind('@');
        const StoreResult r = store_in_maildir(settings.delivery.maildir_root, rcpt.substr(at + 1),
                                               rcpt.substr(0, at), {request.trace, mpc, request.message});
        if (!r.ok)
            return {r.disk_full ? Reason::storage_full : Reason::storage_temporary, rcpt + ": " + r.error};
    }
    return {};
}

} // namespace amtp::amtpd
