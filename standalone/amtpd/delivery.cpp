#include "amtpd/delivery.hpp"

#include "amtp/maildir.hpp"
#include "amtp/trace_headers.hpp"
#include "net/lmtp.hpp"

#include <algorithm>

namespace amtp::amtpd {

namespace {

StorageOutcome storage_failure(bool disk_full, std::string detail)
{
    return {disk_full ? Reason::storage_full : Reason::storage_temporary, std::move(detail), {}};
}

bool is_local(const Settings& s, const std::string& address)
{
    const std::string domain = address.substr(address.rfind('@') + 1);
    return std::find(s.delivery.local_domains.begin(), s.delivery.local_domains.end(), domain) !=
           s.delivery.local_domains.end();
}

// Final delivery to local recipients: by LMTP when delivery.lmtp is set, else into
// their Maildirs.
StorageOutcome deliver_local(const Settings& s, const std::string& sender, const std::vector<std::string>& recipients,
                             const std::vector<std::string_view>& parts)
{
    if (recipients.empty())
        return {};
    if (!s.delivery.lmtp.empty()) {
        const net::LmtpResult r =
            net::deliver_lmtp(s.delivery.lmtp, s.hostname, sender, recipients, parts, s.limits.command_timeout);
        // Even a permanent LMTP refusal is a 4xx here: the recipient was accepted at
        // RCPT, and the operator should fix the agent rather than lose the mail.
        return r.ok ? StorageOutcome{} : storage_failure(false, r.detail);
    }
    for (const auto& rcpt : recipients) {
        const auto at = rcpt.rfind('@');
        const StoreResult r = store_in_maildir(s.delivery.maildir_root, rcpt.substr(at + 1), rcpt.substr(0, at), parts);
        if (!r.ok)
            return storage_failure(r.disk_full, rcpt + ": " + r.error);
    }
    return {};
}

} // namespace

StorageOutcome store_message(const Settings& s, Queue& queue, const DeliveryRequest& request)
{
    const Envelope& env = request.envelope;
    StorageOutcome out;
    // The queue first: one durable step for all remote recipients, undone if a local
    // delivery then fails, so the client's retry does not duplicate remote copies.
    QueueEntry entry;
    std::vector<std::string> local;
    for (std::size_t i = 0; i < env.recipients.size(); ++i) {
        if (env.local[i])
            local.push_back(env.recipients[i]);
        else
            entry.recipients.push_back({env.recipients[i], QueuedStatus::pending, ""});
    }
    if (!entry.recipients.empty()) {
        entry.id = queue.new_id();
        entry.sender = env.sender;
        entry.mpc = env.mpc;
        entry.created = std::time(nullptr);
        entry.next_attempt = entry.created;
        const QueueResult q = queue.enqueue(entry, {request.trace, request.message});
        if (!q.ok)
            return storage_failure(q.disk_full, "queue: " + q.error);
        out.queued_id = entry.id;
    }
    const std::string mpc = mpc_field(env.mpc);
    StorageOutcome r = deliver_local(s, env.sender, local, {request.trace, mpc, request.message});
    if (r.failure != Reason::none) {
        if (!out.queued_id.empty())
            queue.remove(out.queued_id);
        return r;
    }
    return out;
}

StorageOutcome store_generated(const Settings& s, Queue& queue, const std::string& recipient, const MpcValue& mpc,
                               const std::string& message)
{
    if (is_local(s, recipient))
        return deliver_local(s, "", {recipient}, {mpc_field(mpc), message});
    QueueEntry entry;
    entry.id = queue.new_id();
    entry.mpc = mpc;
    entry.created = std::time(nullptr);
    entry.next_attempt = entry.created;
    entry.recipients.push_back({recipient, QueuedStatus::pending, ""});
    const QueueResult q = queue.enqueue(entry, {message});
    if (!q.ok)
        return storage_failure(q.disk_full, "queue: " + q.error);
    return {Reason::none, {}, entry.id};
}

} // namespace amtp::amtpd
