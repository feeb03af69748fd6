#include "amtp/local_delivery.hpp"

#include "ascii.hpp"
#include "amtp/errors.hpp"
#include "amtp/maildir.hpp"
#include "amtp/smtp_syntax.hpp"

#include <fstream>
#include <sstream>

namespace amtp {

namespace {

using ascii::lower;

std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

} // namespace

std::set<std::string> parse_recipient_list(std::string_view text, std::vector<unsigned>* bad)
{
    std::set<std::string> out;
    unsigned number = 0;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        ++number;
        if (const auto hash = line.find('#'); hash != std::string_view::npos)
            line = line.substr(0, hash);
        line = trim(line);
        if (line.empty())
            continue;
        if (const auto box = parse_mailbox(line))
            out.insert(lower(box->str()));
        else if (bad)
            bad->push_back(number);
    }
    return out;
}

std::shared_ptr<const LocalRecipients> LocalRecipients::from_settings(const Settings& settings)
{
    auto r = std::make_shared<LocalRecipients>();
    const std::string& v = settings.delivery.recipients;
    r->maildir_root_ = settings.delivery.maildir_root;
    if (v == "any") {
        r->mode_ = Mode::any;
    } else if (v.rfind("file:", 0) == 0) {
        r->mode_ = Mode::listed;
        const std::string file = v.substr(5);
        std::ifstream in(file, std::ios::binary);
        std::ostringstream text;
        if (!in || !(text << in.rdbuf()))
            throw ConfigError("delivery.recipients: cannot read " + file);
        std::vector<unsigned> bad;
        r->listed_ = parse_recipient_list(text.str(), &bad);
        if (!bad.empty())
            throw ConfigError(file + ":" + std::to_string(bad.front()) + ": not an address (delivery.recipients)");
    } else {
        r->mode_ = Mode::mailbox;
        r->by_agent_ = !settings.delivery.lmtp.empty();
    }
    return r;
}

RecipientVerdict LocalRecipients::check(std::string_view address) const
{
    switch (mode_) {
    case Mode::any:
        return {};
    case Mode::listed:
        if (listed_.count(lower(address)))
            return {};
        return {Reason::unknown_recipient, "not listed"};
    case Mode::mailbox:
        break;
    }
    if (by_agent_)
        return {};
    const auto at = address.rfind('@');
    if (at == std::string_view::npos)
        return {Reason::unknown_recipient, "no domain"};
    const MailboxLookup m = find_maildir(maildir_root_, address.substr(at + 1), address.substr(0, at));
    switch (m.state) {
    case MailboxState::exists:
        return {};
    case MailboxState::lookup_failed:
        return {Reason::storage_temporary, m.error};
    case MailboxState::invalid_name:
        return {Reason::unknown_recipient, "local part cannot be a mailbox name"};
    case MailboxState::missing:
        break;
    }
    return {Reason::unknown_recipient, "no mailbox"};
}

Settlement settle_delivery(const std::vector<LocalOutcome>& outcomes, bool others_durable)
{
    Settlement s;
    unsigned delivered = 0, temporary = 0, permanent = 0;
    bool full = false;
    std::string first_failure;
    for (const auto& o : outcomes) {
        if (o.status == LocalStatus::delivered) {
            ++delivered;
            continue;
        }
        (o.status == LocalStatus::temporary ? temporary : permanent)++;
        full = full || (o.status == LocalStatus::temporary && o.disk_full);
        if (first_failure.empty())
            first_failure = o.recipient + ": " + o.reply;
    }
    if (temporary + permanent == 0)
        return s;
    s.detail = "delivered=" + std::to_string(delivered) + " deferred=" + std::to_string(temporary) +
               " refused=" + std::to_string(permanent) + " first=" + first_failure;
    if (delivered > 0 || (others_durable && temporary == 0)) {
        // A copy is durable (or the remote recipients are queued and nothing local
        // could pass on a retry anyway): 250, and the failures are carried.
        s.carry = true;
        return s;
    }
    if (temporary > 0)
        s.reply = full ? Reason::storage_full : Reason::storage_temporary;
    else
        s.reply = Reason::delivery_refused;
    return s;
}

} // namespace amtp
