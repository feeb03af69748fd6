#include "amtpd/queue_runner.hpp"

#include "amtpd/delivery.hpp"
#include "amtp/trace_headers.hpp"
#include "amtp/net/outgoing.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <map>

namespace amtp::amtpd {

namespace asio = boost::asio;

QueueRunner::QueueRunner(asio::io_context& io, asio::thread_pool& delivery, asio::thread_pool& disk, Queue& queue,
                         std::function<std::shared_ptr<const Runtime>()> runtime, LogSink log)
    : io_(io), workers_(delivery), disk_(disk), queue_(queue), runtime_(std::move(runtime)), log_(std::move(log)),
      timer_(io)
{
}

void QueueRunner::rescan()
{
    if (stopped_)
        return;
    if (scanning_) {
        scan_again_ = true;
        return;
    }
    scanning_ = true;
    settled_during_scan_.clear();
    asio::post(disk_, [this]() {
        std::vector<QueueEntry> loaded = queue_.load_all();
        asio::post(io_, [this, loaded = std::move(loaded)]() mutable { scanned(std::move(loaded)); });
    });
}

void QueueRunner::scanned(std::vector<QueueEntry> loaded)
{
    scanning_ = false;
    if (stopped_)
        return;
    std::map<std::string, QueueEntry> fresh;
    for (auto& e : loaded)
        fresh.emplace(e.id, std::move(e));
    // Entries being tried, or settled while the directory was read, keep the loop's
    // state (a removed one stays removed); everything else is the disk's.
    std::set<std::string> ours = in_flight_;
    ours.insert(settled_during_scan_.begin(), settled_during_scan_.end());
    settled_during_scan_.clear();
    for (const auto& id : ours) {
        if (auto it = entries_.find(id); it != entries_.end())
            fresh[id] = it->second;
        else
            fresh.erase(id);
    }
    entries_ = std::move(fresh);
    schedule();
    if (scan_again_) {
        scan_again_ = false;
        rescan();
    }
}

void QueueRunner::stop()
{
    stopped_ = true;
    *cancel_ = true;
    timer_.cancel();
}

void QueueRunner::schedule()
{
    if (stopped_)
        return;
    std::time_t earliest = 0;
    bool any = false;
    for (const auto& [id, e] : entries_) {
        if (in_flight_.count(id) || e.finished())
            continue;
        if (!any || e.next_attempt < earliest)
            earliest = e.next_attempt;
        any = true;
    }
    if (!any)
        return;
    const std::time_t now = std::time(nullptr);
    timer_.expires_after(std::chrono::seconds(earliest > now ? earliest - now : 0));
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec)
            run_due();
    });
}

void QueueRunner::run_due()
{
    const std::time_t now = std::time(nullptr);
    const auto rt = runtime_();
    for (auto& [id, e] : entries_) {
        if (in_flight_.count(id) || e.finished() || e.next_attempt > now)
            continue;
        in_flight_.insert(id);
        asio::post(workers_, [this, rt, entry = e, cancel = cancel_]() {
            QueueEntry result = attempt_entry(*rt, queue_, entry, log_, cancel.get());
            const bool removed = result.finished();
            asio::post(io_, [this, result = std::move(result), removed]() mutable { finished(std::move(result), removed); });
        });
    }
    schedule();
}

void QueueRunner::finished(QueueEntry entry, bool removed)
{
    in_flight_.erase(entry.id);
    if (scanning_)
        settled_during_scan_.insert(entry.id);
    if (removed)
        entries_.erase(entry.id);
    else
        entries_[entry.id] = std::move(entry);
    // A bounce may have been queued by the attempt: pick it up.
    rescan();
}

QueueEntry attempt_entry(const Runtime& rt, Queue& queue, QueueEntry entry, const LogSink& log,
                         const std::atomic<bool>* cancel)
{
    const Settings& s = rt.settings;
    const auto message = queue.read_message(entry.id);
    const std::time_t now = std::time(nullptr);
    if (!message) {
        if (log)
            log(LogLine("queue").kv("id", entry.id).kv("result", "fail").kv("reason", reason_name(Reason::storage_temporary))
                    .kv("detail", "message file missing").str());
        entry.next_attempt = next_attempt_time(now, ++entry.attempts, s.queue.retry_schedule);
        queue.update(entry);
        return entry;
    }
    Resolver resolver(resolver_options(s));

    std::map<std::string, std::vector<std::size_t>> by_domain;
    std::vector<std::size_t> local;
    for (std::size_t i = 0; i < entry.recipients.size(); ++i)
        if (entry.recipients[i].status == QueuedStatus::pending) {
            const auto& a = entry.recipients[i].address;
            if (ServerConfig::in_local_domains(s.delivery.local_domains, a.substr(a.rfind('@') + 1)))
                local.push_back(i);
            else
                by_domain[a.substr(a.rfind('@') + 1)].push_back(i);
        }
    // Local recipients whose delivery failed while others of their message succeeded
    // (store_message carried them here): delivered locally, with the MPC field that
    // final delivery adds (draft s4.4.4).
    if (!local.empty()) {
        std::vector<std::string> addresses;
        for (auto i : local)
            addresses.push_back(entry.recipients[i].address);
        const auto outcomes = deliver_local(s, entry.sender, addresses, {mpc_field(entry.mpc), *message});
        for (std::size_t k = 0; k < local.size() && k < outcomes.size(); ++k) {
            QueuedRecipient& r = entry.recipients[local[k]];
            r.status = outcomes[k].status == LocalStatus::delivered   ? QueuedStatus::delivered
                       : outcomes[k].status == LocalStatus::permanent ? QueuedStatus::failed
                                                                      : QueuedStatus::pending;
            if (!outcomes[k].reply.empty())
                r.last_reply = outcomes[k].reply;
            if (log)
                log(LogLine("local").kv("id", entry.id).kv("rcpt", r.address)
                        .kv("result", r.status == QueuedStatus::delivered ? "delivered"
                                      : r.status == QueuedStatus::failed ? "refused" : "deferred")
                        .kv("reply", outcomes[k].reply).str());
        }
    }
    for (const auto& [domain, indexes] : by_domain) {
        OutgoingMessage m;
        m.sender = entry.sender;
        m.mpc = entry.mpc;
        m.data = *message;
        for (auto i : indexes)
            m.recipients.push_back(entry.recipients[i].address);
        const net::DomainDelivery d = net::deliver_to_domain(s, resolver, *rt.trust, rt.client_tls.get(), m, domain, log,
                                                              cancel);
        for (std::size_t k = 0; k < indexes.size() && k < d.outcomes.size(); ++k) {
            QueuedRecipient& r = entry.recipients[indexes[k]];
            const RecipientOutcome& o = d.outcomes[k];
            const std::string w = o.reply.wire();
            r.last_reply = w.substr(0, w.find('\r'));
            if (o.status == RecipientStatus::delivered) {
                r.status = QueuedStatus::delivered;
            } else if (o.status == RecipientStatus::permanent) {
                r.status = QueuedStatus::failed;
            }
            if (log)
                log(LogLine("relay").kv("id", entry.id).kv("rcpt", r.address)
                        .kv("result", r.status == QueuedStatus::delivered ? "delivered"
                                      : r.status == QueuedStatus::failed ? "refused" : "deferred")
                        .kv("reason", reason_name(o.reply.reason)).kv("server", d.server).kv("reply", r.last_reply).str());
        }
    }
    ++entry.attempts;
    if (!entry.finished() && queue_expired(entry.created, now, s.queue.max_age)) {
        for (auto& r : entry.recipients)
            if (r.status == QueuedStatus::pending) {
                r.status = QueuedStatus::failed;
                r.last_reply = "421 4.4.7 Delivery time expired; last reply: " + r.last_reply;
            }
    }
    const bool to_report = std::any_of(entry.recipients.begin(), entry.recipients.end(),
                                       [](const QueuedRecipient& r) { return r.status == QueuedStatus::failed; });
    if (to_report && !entry.sender.empty()) {
        QueueEntry report = entry;
        report.recipients.clear();
        for (const auto& r : entry.recipients)
            if (r.status == QueuedStatus::failed)
                report.recipients.push_back(r);
        const std::string bounce = bounce_message(s.hostname, report, *message, now);
        const StorageOutcome b = store_generated(s, queue, entry.sender, MpcValue{"net", "autoresponse"}, bounce);
        if (log)
            log(LogLine("bounce").kv("id", entry.id).kv("to", entry.sender)
                    .kv("result", b.failure == Reason::none ? "queued" : "fail").kv("reason", reason_name(b.failure))
                    .kv("detail", b.detail).str());
        // A bounce that could not be stored is tried again with the next attempt.
        if (b.failure == Reason::none)
            for (auto& r : entry.recipients)
                if (r.status == QueuedStatus::failed)
                    r.status = QueuedStatus::bounced;
    } else if (to_report) {
        if (log)
            log(LogLine("bounce").kv("id", entry.id).kv("result", "dropped").kv("detail", "null sender: no bounce of a bounce").str());
        for (auto& r : entry.recipients)
            if (r.status == QueuedStatus::failed)
                r.status = QueuedStatus::bounced;
    }
    if (entry.finished()) {
        queue.remove(entry.id);
    } else {
        entry.next_attempt = next_attempt_time(now, entry.attempts, s.queue.retry_schedule);
        queue.update(entry);
    }
    return entry;
}

} // namespace amtp::amtpd
