// Every refusal the core can make has a machine-readable reason, and every reason has
// exactly one SMTP reply (code, enhanced status code, text), declared in reply.cpp.
// grep for a reason name lands on its reply, the code that decides it and its tests.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace amtp {

enum class Reason {
    none,
    // TLS identity (tls_identity)
    no_client_cert,
    untrusted_issuer,
    cert_expired,
    cert_not_yet_valid,
    cert_revoked,
    cert_purpose,       // no usable extended key usage
    cert_invalid,       // any other verification failure (bad signature, malformed ...)
    cert_no_name,       // neither a SAN dNSName nor a usable subject CN
    pin_wrong_network,  // pinned self-signed certificate used from an unlisted network
    // Revocation cannot be checked with our tls.crl file: a local fault, never the
    // peer's, so temporary (the peer retries, nothing bounces).
    crl_stale,          // the CRL for the issuer has expired (or is not yet valid)
    crl_missing,        // no usable CRL for the issuer in the file
    // EHLO binding
    helo_refused,
    ehlo_syntax,
    ehlo_not_in_cert,
    ptr_missing,
    ptr_mismatch,
    ptr_unconfirmed,    // dns.forward-confirm: no PTR name resolves back to the address
    dns_temporary,
    // MPC
    mpc_missing,
    mpc_malformed,
    mpc_undefined,
    mpc_duplicate,
    mpc_denied,
    mpc_temporary,
    mpc_header_present,
    mpc_conflict,       // AMTP-MPC header carrier disagrees with the MAIL parameter
    // SMTP dialogue
    ehlo_first,
    bad_sequence,
    syntax_error,
    bad_sender,
    bad_recipient,
    unknown_command,
    unknown_parameter,
    line_too_long,
    data_line_too_long,
    bare_linefeed,
    not_implemented,
    relay_denied,
    unknown_recipient,  // local domain, but no such mailbox (delivery.recipients)
    delivery_refused,   // the local delivery agent refused every recipient for good
    too_many_recipients,
    no_recipients,
    message_too_big,
    too_many_errors,
    timeout,
    tls_required,       // STARTTLS mode: command not allowed before TLS
    tls_already_active,
    shutting_down,
    too_many_connections,
    input_overflow,     // the peer sent far ahead without reading our replies
    storage_full,
    storage_temporary,
    // Hosts and adapters: decided outside the session, named here so that their log
    // lines and any reply they write come from the same table.
    tls_handshake,      // the TLS handshake failed; nothing can be written to the peer
    smtpd_unreachable,  // OpenSMTPD gate: smtpd does not accept the relayed connection
    not_registered,     // OpenSMTPD filter: a session the gate did not register
    bad_local_part,     // Exim: a local part unsafe as a Maildir folder name
    // client side (outgoing)
    srv_missing,
    server_name_mismatch,
    server_cert_invalid,
    connection_failed,
    protocol_error,

    // Not a reason: the number of reasons, so that reply.cpp can prove at compile time
    // that its table has one entry per reason, in this order.
    count_,
};

// The reason's stable name, e.g. "ptr_mismatch". A value that is not a reason (count_,
// or anything cast into the enum) is "invalid_reason", never "none".
const char* reason_name(Reason reason);
// The reason a stable name names (a log line's or another process's); nullopt for none.
std::optional<Reason> reason_from_name(std::string_view name);

struct Reply {
    int code = 0;
    std::string enhanced;              // RFC 3463 status, e.g. "5.7.1"; empty where none is sent
    std::string text;                  // first line's text
    std::vector<std::string> more;     // further lines (EHLO keywords, ...)
    Reason reason = Reason::none;

    bool positive() const { return code >= 200 && code < 400; }
    bool temporary() const { return code >= 400 && code < 500; }
    bool permanent() const { return code >= 500; }
    // Wire form, CRLF-terminated, multi-line with "code-" continuation.
    std::string wire() const;
};

// The one reply for a refusal. `detail` is appended to the default text in parentheses
// where given (it is sanitised: control characters cannot reach the wire).
// Never a positive reply: Reason::none (no refusal) and a value that is not a reason
// both give 451 4.3.0 "Local error in processing", since asking for the refusal of
// nothing is a bug, and a bug must make the peer retry, not accept or bounce its mail.
// Positive replies are built with make_reply.
Reply reply_for(Reason reason, std::string_view detail = {});

Reply make_reply(int code, std::string_view enhanced, std::string_view text);

} // namespace amtp
