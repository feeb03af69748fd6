// Local delivery decisions shared by every front-end that delivers itself:
//  - which recipients of a local domain exist (delivery.recipients), decided at RCPT
//    so that a peer cannot make the server create mailboxes without bound;
//  - what the one reply after DATA must be when the local deliveries of a message end
//    differently (per-recipient LMTP replies, a Maildir write failing midway), so that
//    a client's retry never delivers a copy twice and no recipient is dropped silently.
#pragma once

#include "amtp/reply.hpp"
#include "amtp/settings.hpp"

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace amtp {

struct RecipientVerdict {
    Reason reason = Reason::none;   // none, unknown_recipient (550 5.1.1) or storage_temporary (451 4.3.0)
    std::string detail;             // for the log
};

// delivery.recipients, ready to answer. Built from the settings when a configuration
// is (re)loaded; immutable afterwards.
class LocalRecipients {
public:
    enum class Mode { mailbox, listed, any };

    // Reads the list for "file:PATH"; throws ConfigError when it cannot be read.
    static std::shared_ptr<const LocalRecipients> from_settings(const Settings& settings);

    // `address` is local@domain of a local domain (domain normalised). A lookup that
    // fails for another reason than "missing" is temporary, never a refusal (the
    // defer-if-permit rule of profile B4).
    RecipientVerdict check(std::string_view address) const;

    Mode mode() const { return mode_; }

private:
    Mode mode_ = Mode::mailbox;
    bool by_agent_ = false;          // mailbox mode with delivery.lmtp: the agent decides
    std::string maildir_root_;
    std::set<std::string> listed_;   // lower-cased addresses
};

// Parses a recipient list: one address per line, "#" to the end of a line is a
// comment, blank lines are ignored; addresses are lower-cased. Unparsable lines are
// returned in `bad` (line numbers) so the configuration check can name them.
std::set<std::string> parse_recipient_list(std::string_view text, std::vector<unsigned>* bad = nullptr);

// How the local delivery of one recipient ended.
enum class LocalStatus { delivered, temporary, permanent };

struct LocalOutcome {
    std::string recipient;
    LocalStatus status = LocalStatus::temporary;
    bool disk_full = false;          // ENOSPC/EDQUOT: 452 4.3.1 rather than 451 4.3.0
    std::string reply;               // one printable line: the agent's reply or the storage error
    std::string path;                // Maildir file written (delivered), for an undo
};

// The reply after DATA, given every local recipient's outcome and whether other
// recipients of the message are already durable elsewhere (the outgoing queue).
struct Settlement {
    Reason reply = Reason::none;     // none (250), storage_full, storage_temporary or delivery_refused
    bool carry = false;              // the failed recipients must be made durable before the 250:
                                     // temporary ones retried, permanent ones bounced (RFC 3464)
    std::string detail;              // summary for the log
};

// The rule: once one copy is durable, a 4xx would make the client send every copy
// again, so the answer is 250 and the failed recipients are carried (queued for retry
// or bounced) instead. While nothing is durable, the failure is the client's to
// retry: 452/451 if any failure is temporary, else 554 5.0.0 (every recipient refused).
Settlement settle_delivery(const std::vector<LocalOutcome>& outcomes, bool others_durable);

} // namespace amtp
