// A durable queue for outgoing AMTP mail: one immutable message file and one small
// envelope file per entry, each written to a temporary name, fsync'ed, renamed into
// place, and the directory fsync'ed, so an acknowledged message survives a crash and
// a half-written entry is never taken for a whole one. Retry timing (queue.retry-
// schedule, queue.max-age) and the bounce a failure produces (draft s6: bounces use
// MPC net/autoresponse and the null sender) are decided here too, as pure functions.
#pragma once

#include "amtp/mpc.hpp"

#include <chrono>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace amtp {

// failed: refused, its bounce not yet written; bounced: refused and reported.
enum class QueuedStatus { pending, delivered, failed, bounced };

struct QueuedRecipient {
    std::string address;
    QueuedStatus status = QueuedStatus::pending;
    std::string last_reply;          // printable, one line
};

struct QueueEntry {
    std::string id;
    std::string sender;              // "" for a bounce
    MpcValue mpc;
    std::vector<QueuedRecipient> recipients;
    std::time_t created = 0;
    std::time_t next_attempt = 0;
    unsigned attempts = 0;

    bool finished() const;           // nothing pending and every failure reported
};

std::string serialize_entry(const QueueEntry& entry);
// nullopt for a damaged or unknown envelope file.
std::optional<QueueEntry> parse_entry(std::string_view text);

struct QueueResult {
    bool ok = false;
    bool disk_full = false;
    std::string error;
};

class Queue {
public:
    // The directory is created (0700) when missing; throws ConfigError if it cannot be.
    explicit Queue(std::string directory);

    const std::string& directory() const { return dir_; }
    std::string new_id() const;

    // Writes the message (the concatenation of parts) and then the envelope; the entry
    // exists, durably, only when this returns ok.
    QueueResult enqueue(const QueueEntry& entry, const std::vector<std::string_view>& message_parts);
    // Atomically replaces the envelope.
    QueueResult update(const QueueEntry& entry);
    // Removes envelope then message (a crash between leaves an orphan message file,
    // which load_all() removes, never an envelope without its message).
    QueueResult remove(const std::string& id);
    std::optional<std::string> read_message(const std::string& id) const;
    // Every valid entry. Message files without an envelope and temporary files older
    // than `stale_after` are removed: an enqueue in progress in another process is
    // younger than that and stays untouched.
    std::vector<QueueEntry> load_all(std::chrono::seconds stale_after = std::chrono::hours(1));

private:
    std::string dir_;
};

// When the next attempt is due after `attempts` failed ones: the schedule's entry for
// that attempt, its last entry beyond its end. An empty schedule retries after 5 min.
std::time_t next_attempt_time(std::time_t now, unsigned attempts, const std::vector<std::chrono::seconds>& schedule);
// True when an entry created at `created` has been queued longer than max_age.
bool queue_expired(std::time_t created, std::time_t now, std::chrono::seconds max_age);

// A delivery status notification for the failed recipients of an entry (RFC 3464
// layout, text part first), from MAILER-DAEMON@hostname, MPC net/autoresponse.
// `original` is the queued message; its header block is quoted.
std::string bounce_message(const std::string& hostname, const QueueEntry& entry, std::string_view original,
                           std::time_t now);

} // namespace amtp
