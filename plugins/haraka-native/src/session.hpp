// One Haraka connection's AMTP session, without Node: the core's rulebook over the
// site's configuration for the connection's listener, fed what Haraka's hooks saw and
// answering with the rulebook's verdicts. It decides nothing itself; it translates:
// the listener from the local address, Haraka's header list into the core's header
// scanner and back into "remove these fields", and reason and status names.
// addon.cc wraps it for JavaScript (a node-addon-api object per connection);
// tests/fuzz/fuzz_haraka_args.cpp drives it with arbitrary strings.
#pragma once

#include "amtp/address.hpp"
#include "amtp/reply.hpp"
#include "amtp/reverse_dns.hpp"
#include "amtp/rulebook.hpp"
#include "amtp/site.hpp"
#include "amtp/tls_identity.hpp"

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace amtp::haraka {

// "answer", "negative", "temporary" (the names dns_status_name gives).
std::optional<DnsStatus> dns_status_by_name(std::string_view name);

// What Haraka saw of a message's data at the end of DATA.
struct MessageInput {
    std::uint64_t size = 0;               // octets of the message (see MessageFacts::size)
    bool line_too_long = false;
    bool bare_linefeed = false;
    // Haraka's header list: one entry per field, its continuation lines included, each
    // line ended by LF or CRLF.
    std::vector<std::string> header;
};

struct MessageVerdict {
    Verdict verdict;                      // refused, or empty: store the message
    std::vector<std::size_t> remove;      // entries of `header` to remove, ascending
};

class Session {
public:
    // can_relay: the host has a way to send mail on (the relay sidecar); without it a
    // recipient of another domain is refused on every listener.
    Session(std::shared_ptr<const Site> site, const IpAddress& peer, const IpAddress& local, unsigned port,
            std::string session_id, bool can_relay);

    const Site& site() const { return *site_; }
    const SessionFacts& facts() const { return facts_; }
    // The peer's PTR is asked for at connect where the rulebook will want it at EHLO
    // (as amtpd's session does): the answer is usually there by then.
    bool lookup_at_connect() const { return facts_.listener == ListenerKind::public_network; }

    std::string connect_log() const { return rules_.connect_log(facts_); }
    // TLS finished (at connect, or after STARTTLS) with the core's verdict on the chain.
    std::string tls(IdentityResult identity, std::string version, std::string cipher);
    Verdict helo() { return rules_.helo(facts_); }
    Verdict ehlo(std::string_view argument) { return rules_.ehlo(facts_, argument); }
    Verdict ehlo_ptr(ReverseDnsResult result) { return rules_.ehlo_ptr(facts_, std::move(result)); }
    Verdict mail(std::string_view argument) { return rules_.mail(facts_, argument); }
    Verdict rcpt(std::string_view argument);
    Verdict data() { return rules_.data(facts_); }
    void reset() { reset_transaction(facts_); }
    // The end of the data: the header through the core's scanner, then the verdict.
    MessageVerdict message(const MessageInput& input);
    std::string trace_fields(std::time_t now) const { return rules_.trace_fields(facts_, now); }
    Verdict accepted(std::string_view message_id, std::string_view detail)
    {
        return rules_.accepted(facts_, message_, message_id, detail);
    }
    Verdict store_failed(Reason failure, std::string_view detail) { return rules_.store_failed(facts_, failure, detail); }
    Verdict refusal(std::string_view event, Reason reason, std::string_view detail, bool counts_as_error) const
    {
        return rules_.refusal(facts_, event, reason, detail, counts_as_error);
    }

private:
    std::shared_ptr<const Site> site_;
    Rulebook rules_;
    SessionFacts facts_;
    MessageFacts message_;                // the last message's facts, for accepted()
};

} // namespace amtp::haraka
