// The rulebook: every decision AMTP makes about a session, made here once. Each stage
// of a session (TLS identity and EHLO with its PTR verdict, MAIL with its parameters,
// each RCPT, DATA, the end of the message with its header scan, the trace fields,
// acceptance) is one call that reads and updates the session's facts and returns the
// verdict: the reason, the reply and the one log line that explains it.
//
// Who calls it: ServerSession (amtpd and the OpenSMTPD filter) feeds it commands it
// has read itself; the Exim module and the Haraka addon feed it what their MTA parsed
// and translate the verdict back into their hooks. None of them decides anything.
// What stays with the host: the SMTP dialogue's sequence of commands (the MTA has its
// own state machine), line framing, storage and DNS I/O.
#pragma once

#include "amtp/address.hpp"
#include "amtp/local_delivery.hpp"
#include "amtp/log.hpp"
#include "amtp/mpc.hpp"
#include "amtp/policy.hpp"
#include "amtp/reply.hpp"
#include "amtp/reverse_dns.hpp"
#include "amtp/settings.hpp"
#include "amtp/tls_identity.hpp"

#include <cstdint>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace amtp {

class HeaderScanner;

// Shared, immutable configuration of one listener.
struct ServerConfig {
    std::string hostname;
    ListenerKind listener = ListenerKind::public_network;
    bool starttls = false;                       // profile B1: STARTTLS mode instead of implicit TLS
    std::vector<std::string> local_domains;      // normalised
    Limits limits;
    std::shared_ptr<const Policy> policy;        // null: no site rules (ALLOW */*)
    // Profile B5, for front-ends whose MTA cannot take MPC= on MAIL: a MAIL without the
    // parameter is accepted and the value must arrive in an AMTP-MPC header field.
    bool accept_header_carrier = false;
    // delivery.recipients for hosts that deliver locally themselves; null: every
    // recipient of a local domain is accepted (the MTA behind checks them).
    std::shared_ptr<const LocalRecipients> recipients;
    // Whether this host can send mail on (amtpd's queue, Haraka's relay sidecar): a
    // host that cannot refuses another domain's recipient on a private listener too.
    bool can_relay = true;

    bool is_local_domain(std::string_view domain) const { return in_local_domains(local_domains, domain); }

    // Whether `domain` (normalised here) is one of `local_domains` (normalised): the one
    // test of "delivered here, not relayed" for sessions, the queue and bounces.
    static bool in_local_domains(const std::vector<std::string>& local_domains, std::string_view domain);
};

// Builds a ServerConfig for a listener from the shared settings and policy.
ServerConfig make_server_config(const Settings& settings, std::shared_ptr<const Policy> policy,
                                ListenerKind listener);

struct TlsInfo {
    IdentityResult identity;
    std::string version;                         // "TLSv1.3"
    std::string cipher;
    bool resumed = false;                        // a resumed session: the identity came from its ticket
};

struct Envelope {
    std::string sender;                          // "" for the null reverse path
    std::vector<std::string> recipients;         // local@domain, domain normalised
    std::vector<bool> local;                     // per recipient: domain is a local domain
    MpcValue mpc;
};

// What a session has established: written only by the rulebook's calls (and the
// host's connection facts before the first one).
struct SessionFacts {
    IpAddress peer;
    std::string session_id;
    ListenerKind listener = ListenerKind::public_network;
    std::optional<TlsInfo> tls;                  // none: no TLS yet (STARTTLS mode)
    std::optional<Identity> identity;            // the verified client identity
    // EHLO.
    bool authenticated = false;
    std::string ehlo_name;                       // set once authenticated
    std::string ptr_name;                        // empty on private listeners (PTR skipped)
    std::string pending_ehlo;                    // a checked EHLO name awaiting its PTR verdict
    std::optional<ReverseDnsResult> reverse;     // kept for the session, except a temporary failure
    // The transaction.
    bool in_mail = false;
    Envelope envelope;
    bool mpc_from_parameter = false;             // else the header carrier (B5) brings it
};

struct Verdict {
    Reason reason = Reason::none;
    Reply reply;                                 // positive, or reply_for(reason)
    bool counts_as_error = false;                // toward limits.max_errors
    bool needs_ptr = false;                      // EHLO: resolve facts.peer, then ehlo_ptr()
    std::string log;                             // the decision's one key=value line

    bool refused() const { return reason != Reason::none; }
};

// What the host saw of a message's data, for the end-of-DATA verdict.
struct MessageFacts {
    std::uint64_t size = 0;                      // octets after dot-unstuffing, CRLF counted as 2
    bool line_too_long = false;                  // a line over 998 characters
    bool bare_linefeed = false;                  // a line ended by LF alone
    bool mpc_field = false;                      // the header already has an MPC field
    std::vector<std::string> carriers;           // AMTP-MPC values (profile B5)
    unsigned forged_results = 0;                 // Authentication-Results claiming our authserv-id

    // The header facts as the core's scanner found them (after finish()).
    void take_header(const HeaderScanner& scanner);
};

class Rulebook {
public:
    explicit Rulebook(std::shared_ptr<const ServerConfig> config);

    const ServerConfig& config() const { return *config_; }

    // The connection's first facts (peer, listener, session id) and the connect line.
    SessionFacts open(IpAddress peer, std::string session_id, ListenerKind listener) const;
    std::string connect_log(const SessionFacts& f) const;
    // TLS finished (implicit TLS at connect, or after STARTTLS): a new identity, so
    // the session starts over (RFC 3207: forget everything learnt before).
    std::string tls_established(SessionFacts& f, TlsInfo tls) const;

    Verdict helo(SessionFacts& f) const;
    // EHLO: syntax, the certificate (its verification result), the name in it, then on
    // public listeners the PTR: needs_ptr when facts.reverse has no answer yet.
    Verdict ehlo(SessionFacts& f, std::string_view argument) const;
    Verdict ehlo_ptr(SessionFacts& f, ReverseDnsResult result) const;
    // MAIL's argument ("FROM:<a@b> SIZE=10 MPC=per/individual"): ehlo_first, syntax,
    // sender, parameters (SIZE before MPC), the MPC parameter and the declarations.
    // Opens a transaction (the host has already applied its command sequence).
    Verdict mail(SessionFacts& f, std::string_view argument) const;
    // RCPT's argument ("TO:<a@b>"): syntax, the recipient limit, relaying, the local
    // mailbox, then the recipient's MPC rules. Adds the recipient on acceptance.
    Verdict rcpt(SessionFacts& f, std::string_view argument) const;
    // DATA: a transaction with at least one recipient.
    Verdict data(SessionFacts& f) const;
    // The end of the data: size, line length, bare LF, an MPC field already present,
    // then the carrier (one, well-formed, agreeing with MAIL's parameter) and, for a
    // carried value, the declarations and every recipient's rules. On acceptance the
    // envelope's MPC is final and the host stores the message.
    Verdict message(SessionFacts& f, const MessageFacts& m) const;
    // Received and Authentication-Results (each CRLF-ended) for the accepted message;
    // trace_fields: the two in that order, as they go on top of the message.
    struct TraceFields {
        std::string received;
        std::string authentication_results;
    };
    TraceFields trace(const SessionFacts& f, std::time_t now) const;
    std::string trace_fields(const SessionFacts& f, std::time_t now) const;
    // The message is stored (detail: recipients carried to the queue, if any): the
    // 250 and its log line; the transaction ends.
    Verdict accepted(SessionFacts& f, const MessageFacts& m, std::string_view message_id,
                     std::string_view detail = {}) const;
    // Storage failed: storage_full, storage_temporary or delivery_refused.
    Verdict store_failed(SessionFacts& f, Reason failure, std::string_view detail) const;
    // A refusal the host's dialogue made (sequence, framing, timeouts): its reply and
    // its log line, in the same shape as every other refusal.
    Verdict refusal(const SessionFacts& f, std::string_view event, Reason reason, std::string_view detail = {},
                    bool counts_as_error = true) const;

    // The EHLO reply of an authenticated session: its keywords are the site's.
    Reply ehlo_reply(const SessionFacts& f) const;

private:
    // Extra key=value pairs of a decision's log line; a pair with an empty key is left out.
    using LogFields = std::initializer_list<std::pair<std::string_view, std::string_view>>;
    Verdict refuse(const SessionFacts& f, std::string_view event, Reason reason, LogFields fields = {},
                   bool counts_as_error = true) const;
    Verdict pass(const SessionFacts& f, std::string_view event, Reply reply, LogFields fields = {}) const;
    // unknown_parameter, whose reply names the keyword.
    Verdict unknown_parameter(const SessionFacts& f, std::string_view event, std::string_view keyword) const;
    LogLine decision_line(const SessionFacts& f, std::string_view event, Reason reason) const;
    Verdict finish_ehlo(SessionFacts& f) const;

    std::shared_ptr<const ServerConfig> config_;
};

void reset_transaction(SessionFacts& f);

// The MPC an outgoing message carries (draft s5.2, s6): the value given (a header
// field kept from reception, or the sender's choice), which no MTA may rewrite, so an
// invalid one is none, with its reason; else net/autoresponse for a bounce (null
// sender); else the value the policy binds to the sender; else none.
struct OutgoingMpc {
    std::optional<MpcValue> value;
    Reason reason = Reason::none;                // the given value's fault, if any
};
OutgoingMpc outgoing_mpc(const Policy* policy, std::string_view given, std::string_view sender);

} // namespace amtp
