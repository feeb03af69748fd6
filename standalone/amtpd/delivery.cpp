#include "amtpd/delivery.hpp"

#include "amtp/errors.hpp"
#include "amtp/maildir.hpp"
#include "amtp/trace_headers.hpp"
#include "amtp/net/lmtp.hpp"

#include <unistd.h>

#include <algorithm>

namespace amtp::amtpd {

namespace {

StorageOutcome storage_failure(bool disk_full, std::string detail)
{
    return {disk_full ? Reason::storage_full : Reason::storage_temporary, std::move(detail), {}};
}

std::string failed_list(const std::vector<LocalOutcome>& outcomes)
{
    std::string out;
    for (const auto& o : outcomes)
        if (o.status != LocalStatus::delivered)
            out += (out.empty() ? "" : ",") + o.recipient;
    return out;
}

} // namespace

std::vector<LocalOutcome> deliver_local(const Settings& s, const std::string& sender,
                                        const std::vector<std::string>& recipients,
                                        const std::vector<std::string_view>& parts)
{
    if (recipients.empty())
        return {};
    if (!s.delivery.lmtp.empty())
        return net::deliver_lmtp(s.delivery.lmtp, s.hostname, sender, recipients, parts, s.limits.command_timeout);
    std::vector<LocalOutcome> out;
    // Every recipient is tried even after one failed: each copy is independent, and
    // settle_delivery decides what the failures mean for the reply.
    for (const auto& rcpt : recipients) {
        const auto at = rcpt.rfind('@');
        const StoreResult r = store_in_maildir(s.delivery.maildir_root, rcpt.substr(at + 1), rcpt.substr(0, at), parts);
        LocalOutcome o;
        o.recipient = rcpt;
        o.status = r.ok ? LocalStatus::delivered : r.temporary ? LocalStatus::temporary : LocalStatus::permanent;
        o.disk_full = r.disk_full;
        o.reply = r.ok ? "" : (r.temporary ? "451 4.3.0 " : "550 5.1.1 ") + r.error;
        o.path = r.path;
        out.push_back(std::move(o));
    }
    return out;
}

StorageOutcome store_message(const Settings& s, Queue& queue, const DeliveryRequest& request)
{
    const Envelope& env = request.envelope;
    StorageOutcome out;
    // The queue first: one durable step for all remote recipients, undone if nothing
    // local could be delivered, so the client's retry does not duplicate remote copies.
    QueueEntry entry;
    std::vector<std::string> local;
    for (std::size_t i = 0; i < env.recipients.size(); ++i) {
        if (env.local[i])
            local.push_back(env.recipients[i]);
        else
            entry.recipients.push_back({env.recipients[i], QueuedStatus::pending, ""});
    }
    entry.sender = env.sender;
    entry.mpc = env.mpc;
    entry.created = std::time(nullptr);
    entry.next_attempt = entry.created;
    if (!entry.recipients.empty()) {
        entry.id = queue.new_id();
        const QueueResult q = queue.enqueue(entry, {request.trace, request.message});
        if (!q.ok)
            return storage_failure(q.disk_full, "queue: " + q.error);
        out.queued_id = entry.id;
    }
    const std::string mpc = mpc_field(env.mpc);
    const std::vector<LocalOutcome> outcomes = deliver_local(s, env.sender, local, {request.trace, mpc, request.message});
    const Settlement settled = settle_delivery(outcomes, !out.queued_id.empty());
    auto undo_queue = [&] {
        if (!out.queued_id.empty())
            queue.remove(out.queued_id);
    };
    if (settled.reply != Reason::none) {
        undo_queue();
        return {settled.reply, settled.detail, {}};
    }
    if (!settled.carry)
        return out;

    // Some copies are durable and some recipients failed: the failures go to the queue
    // (the queue runner delivers local recipients locally, with the MPC field, and
    // bounces the permanent failures), and only then is the 250 sent. An entry of their
    // own: the remote recipients' entry may already be in the queue runner's hands.
    QueueEntry carried = entry;
    carried.recipients.clear();
    for (const auto& o : outcomes) {
        if (o.status == LocalStatus::delivered)
            continue;
        carried.recipients.push_back(
            {o.recipient, o.status == LocalStatus::temporary ? QueuedStatus::pending : QueuedStatus::failed, o.reply});
    }
    carried.id = queue.new_id();
    const QueueResult q = queue.enqueue(carried, {request.trace, request.message});
    if (!q.ok) {
        // Nothing can carry the failures. Undo the Maildir copies just written, so that
        // the client's retry delivers them once; copies an LMTP agent took cannot be
        // taken back, and a duplicate is preferred to a loss (RFC 5321 s6.1).
        bool undone = true;
        for (const auto& o : outcomes)
            if (o.status == LocalStatus::delivered && (o.path.empty() || ::unlink(o.path.c_str()) != 0))
                undone = false;
        undo_queue();
        return storage_failure(q.disk_full, "queue: " + q.error + (undone ? "" : "; copies already delivered may "
                                                                                "be delivered again"));
    }
    out.queued_id = carried.id;
    out.detail = "carried=" + failed_list(outcomes) + " queue=" + carried.id + " " + settled.detail;
    return out;
}

StorageOutcome store_generated(const Settings& s, Queue& queue, const std::string& recipient, const MpcValue& mpc,
                               const std::string& message)
{
    if (ServerConfig::in_local_domains(s.delivery.local_domains, recipient.substr(recipient.rfind('@') + 1))) {
        // A bounce for a local address without a mailbox has nobody to read it: it is
        // dropped rather than made into a new mailbox (delivery.recipients bounds
        // mailbox creation, and a private client chooses its sender address).
        try {
            const RecipientVerdict v = LocalRecipients::from_settings(s)->check(recipient);
            if (v.reason == Reason::unknown_recipient)
                return {Reason::none, "dropped: " + recipient + " is not a known local recipient", {}};
        } catch (const ConfigError& e) {
            return storage_failure(false, e.what());
        }
        const auto o = deliver_local(s, "", {recipient}, {mpc_field(mpc), message});
        if (o.front().status == LocalStatus::delivered)
            return {};
        return storage_failure(o.front().disk_full, o.front().reply);
    }
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
