#include "amtp/reply.hpp"

#include "amtp/log.hpp"

#include <cstddef>
#include <iterator>
#include <type_traits>

namespace amtp {

namespace {

struct Entry {
    Reason reason;
    const char* name;
    int code;
    const char* enhanced;
    const char* text;
};

// The table of refusals: the only place a refusal's code and text are chosen.
// One entry per Reason, in the enum's order (checked below), so the lookup is an index.
constexpr Entry table[] = {
    // Not a refusal: a caller asking for its reply has a bug (see reply_for).
    {Reason::none, "none", 451, "4.3.0", "Local error in processing"},
    {Reason::no_client_cert, "no_client_cert", 504, "5.7.1", "Authentication failed: no client certificate"},
    {Reason::untrusted_issuer, "untrusted_issuer", 504, "5.7.1", "Authentication failed: certificate not issued by a trusted CA"},
    {Reason::cert_expired, "cert_expired", 504, "5.7.1", "Authentication failed: certificate expired"},
    {Reason::cert_not_yet_valid, "cert_not_yet_valid", 504, "5.7.1", "Authentication failed: certificate not yet valid"},
    {Reason::cert_revoked, "cert_revoked", 504, "5.7.1", "Authentication failed: certificate revoked"},
    {Reason::cert_purpose, "cert_purpose", 504, "5.7.1", "Authentication failed: certificate not valid for TLS client authentication"},
    {Reason::cert_invalid, "cert_invalid", 504, "5.7.1", "Authentication failed: certificate invalid"},
    {Reason::cert_no_name, "cert_no_name", 504, "5.7.1", "Authentication failed: certificate names no host"},
    {Reason::pin_wrong_network, "pin_wrong_network", 504, "5.7.1", "Authentication failed: pinned certificate not valid from this network"},
    {Reason::crl_stale, "crl_stale", 451, "4.7.5", "Authentication temporarily unavailable: our certificate revocation list is out of date"},
    {Reason::crl_missing, "crl_missing", 451, "4.7.5", "Authentication temporarily unavailable: no usable certificate revocation list for the issuer"},
    {Reason::helo_refused, "helo_refused", 504, "5.5.1", "HELO is not supported by AMTP; use EHLO"},
    {Reason::ehlo_syntax, "ehlo_syntax", 501, "5.5.2", "Syntax: EHLO fully-qualified-domain-name"},
    {Reason::ehlo_not_in_cert, "ehlo_not_in_cert", 504, "5.7.1", "Authentication failed: EHLO name not in client certificate"},
    {Reason::ptr_missing, "ptr_missing", 504, "5.7.1", "Authentication failed: no PTR record for client address"},
    {Reason::ptr_mismatch, "ptr_mismatch", 504, "5.7.1", "Authentication failed: PTR record does not match EHLO name"},
    {Reason::ptr_unconfirmed, "ptr_unconfirmed", 504, "5.7.1", "Authentication failed: PTR name does not resolve to client address"},
    {Reason::dns_temporary, "dns_temporary", 451, "4.4.3", "Temporary DNS failure; try again later"},
    {Reason::mpc_missing, "mpc_missing", 555, "5.5.4", "MPC parameter required"},
    {Reason::mpc_malformed, "mpc_malformed", 501, "5.5.4", "Malformed MPC value"},
    {Reason::mpc_undefined, "mpc_undefined", 501, "5.5.4", "Undefined MPC role or class"},
    {Reason::mpc_duplicate, "mpc_duplicate", 501, "5.5.4", "Exactly one MPC parameter allowed"},
    {Reason::mpc_denied, "mpc_denied", 550, "5.7.1", "MPC policy violation"},
    {Reason::mpc_temporary, "mpc_temporary", 451, "4.7.1", "MPC temporary failure"},
    {Reason::mpc_header_present, "mpc_header_present", 550, "5.7.1", "MPC policy violation: message already has an MPC header field"},
    {Reason::mpc_conflict, "mpc_conflict", 550, "5.7.1", "MPC policy violation: AMTP-MPC header field disagrees with MAIL parameter"},
    {Reason::ehlo_first, "ehlo_first", 503, "5.5.1", "Authenticate with EHLO first"},
    {Reason::bad_sequence, "bad_sequence", 503, "5.5.1", "Bad sequence of commands"},
    {Reason::syntax_error, "syntax_error", 501, "5.5.2", "Syntax error in parameters or arguments"},
    {Reason::bad_sender, "bad_sender", 501, "5.1.7", "Bad sender address syntax"},
    {Reason::bad_recipient, "bad_recipient", 501, "5.1.3", "Bad recipient address syntax"},
    {Reason::unknown_command, "unknown_command", 500, "5.5.1", "Command unrecognized"},
    {Reason::unknown_parameter, "unknown_parameter", 555, "5.5.4", "Parameter not recognized"},
    {Reason::line_too_long, "line_too_long", 500, "5.5.2", "Line too long"},
    {Reason::data_line_too_long, "data_line_too_long", 554, "5.6.0", "Message has a line longer than 998 characters"},
    {Reason::bare_linefeed, "bare_linefeed", 554, "5.6.0", "Message contains a bare LF; lines must end with CRLF"},
    {Reason::not_implemented, "not_implemented", 502, "5.5.1", "Command not implemented"},
    {Reason::relay_denied, "relay_denied", 550, "5.7.1", "Relaying denied: recipient domain is not local"},
    {Reason::unknown_recipient, "unknown_recipient", 550, "5.1.1", "Recipient address unknown: no such mailbox here"},
    {Reason::delivery_refused, "delivery_refused", 554, "5.0.0", "Delivery refused by the local delivery agent"},
    {Reason::too_many_recipients, "too_many_recipients", 452, "4.5.3", "Too many recipients"},
    {Reason::no_recipients, "no_recipients", 503, "5.5.1", "No valid recipients"},
    {Reason::message_too_big, "message_too_big", 552, "5.3.4", "Message size exceeds fixed maximum message size"},
    {Reason::too_many_errors, "too_many_errors", 421, "4.7.0", "Too many errors; closing connection"},
    {Reason::timeout, "timeout", 421, "4.4.2", "Timeout; closing connection"},
    {Reason::tls_required, "tls_required", 530, "5.7.0", "Must issue a STARTTLS command first"},
    {Reason::tls_already_active, "tls_already_active", 503, "5.5.1", "TLS already active"},
    {Reason::shutting_down, "shutting_down", 421, "4.3.2", "Service shutting down; closing connection"},
    {Reason::too_many_connections, "too_many_connections", 421, "4.7.0", "Too many connections; try again later"},
    {Reason::input_overflow, "input_overflow", 421, "4.7.0", "Too much input without reading replies; closing connection"},
    {Reason::storage_full, "storage_full", 452, "4.3.1", "Insufficient system storage"},
    {Reason::storage_temporary, "storage_temporary", 451, "4.3.0", "Local error in processing; try again later"},
    // The handshake failed, so this is never sent; it is what the log line means.
    {Reason::tls_handshake, "tls_handshake", 421, "4.7.0", "TLS handshake failed; closing connection"},
    // The gate's greeting in smtpd's place: 421, since the gate closes at once.
    {Reason::smtpd_unreachable, "smtpd_unreachable", 421, "4.4.1", "Mail service not reachable; try again later"},
    // Permanent, as the filter has always answered: while the gate works, only a
    // connection it did not make (a local process writing its own PROXY header to
    // smtpd's port) lands here.
    {Reason::not_registered, "not_registered", 554, "5.7.1", "Connection refused: it did not come through the AMTP gate"},
    // Exim's router declines such a local part and Exim writes its own refusal; the
    // entry says what that refusal means, for the log and the documentation.
    {Reason::bad_local_part, "bad_local_part", 550, "5.1.3", "Bad recipient address: local part not usable as a mailbox name"},
    {Reason::srv_missing, "srv_missing", 550, "5.1.2", "No AMTP service (_amtp._tcp SRV) for recipient domain"},
    {Reason::server_name_mismatch, "server_name_mismatch", 550, "5.7.4", "Server certificate does not match the SRV target"},
    {Reason::server_cert_invalid, "server_cert_invalid", 550, "5.7.4", "Server certificate not trusted"},
    {Reason::connection_failed, "connection_failed", 421, "4.4.1", "Connection to the AMTP server failed"},
    {Reason::protocol_error, "protocol_error", 421, "4.5.0", "Unexpected reply from the AMTP server"},
};

// What a value outside the enum gets: temporary, so a bug delays mail but never
// accepts or bounces it; and not named "none", which logs read as a pass.
constexpr Entry invalid = {Reason::count_, "invalid_reason", 451, "4.3.0", "Local error in processing"};

// A reason added to the enum without its entry here does not compile.
static_assert(std::size(table) == static_cast<std::size_t>(Reason::count_),
              "reply.cpp: every Reason needs exactly one entry in the table");

constexpr bool in_enum_order()
{
    for (std::size_t i = 0; i < std::size(table); ++i)
        if (table[i].reason != static_cast<Reason>(i))
            return false;
    return true;
}
static_assert(in_enum_order(), "reply.cpp: table entries must follow the order of enum Reason");

// reply_for is for refusals: no entry may be positive, and the enhanced code's class
// must be the reply code's (RFC 3463: 4.x.x with 4yz, 5.x.x with 5yz).
constexpr bool refusal(const Entry& e)
{
    return e.code >= 400 && e.code < 600 && e.enhanced[0] - '0' == e.code / 100;
}

constexpr bool all_refusals()
{
    for (const auto& e : table)
        if (!refusal(e))
            return false;
    return refusal(invalid);
}
static_assert(all_refusals(), "reply.cpp: every entry is a 4yz or 5yz reply with an enhanced code of its class");

const Entry& entry(Reason reason)
{
    // Any integer can be cast into the enum; only 0 .. count_-1 name a reason.
    const auto i = static_cast<std::underlying_type_t<Reason>>(reason);
    if (i < 0 || i >= static_cast<std::underlying_type_t<Reason>>(Reason::count_))
        return invalid;
    return table[static_cast<std::size_t>(i)];
}

} // namespace

const char* reason_name(Reason reason)
{
    return entry(reason).name;
}

std::optional<Reason> reason_from_name(std::string_view name)
{
    for (const Entry& e : table)
        if (name == e.name)
            return e.reason;
    return std::nullopt;
}

Reply make_reply(int code, std::string_view enhanced, std::string_view text)
{
    Reply r;
    r.code = code;
    r.enhanced = std::string(enhanced);
    r.text = printable(text);
    return r;
}

Reply reply_for(Reason reason, std::string_view detail)
{
    const Entry& e = entry(reason);
    Reply r = make_reply(e.code, e.enhanced, e.text);
    if (!detail.empty())
        r.text += " (" + printable(detail) + ")";
    r.reason = reason;
    return r;
}

std::string Reply::wire() const
{
    std::vector<std::string> lines;
    lines.push_back(text);
    lines.insert(lines.end(), more.begin(), more.end());
    std::string out;
    const std::string code_text = std::to_string(code);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        out += code_text;
        out += (i + 1 < lines.size()) ? '-' : ' ';
        // Enhanced codes go on every line of a reply that has one (RFC 2034 s4).
        if (!enhanced.empty()) {
            out += enhanced;
            out += ' ';
        }
        out += lines[i];
        out += "\r\n";
    }
    return out;
}

} // namespace amtp
