// The addon's decisions on strings from Haraka (EHLO name, MAIL argument, addresses,
// PTR answers, header lines, trace field inputs), without Node: addon.cc converts
// JavaScript values to these arguments and the results back. Kept apart so that
// tests/fuzz/fuzz_haraka_args.cpp runs the same code on arbitrary strings.
#pragma once

#include "amtp/mpc.hpp"
#include "amtp/reply.hpp"
#include "amtp/reverse_dns.hpp"
#include "amtp/tls_identity.hpp"

#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace amtp::haraka {

// A reason by its stable name ("ptr_mismatch"); nullopt for an unknown name.
std::optional<Reason> reason_by_name(std::string_view name);

// mailCommand: the argument of MAIL ("FROM:<a@b> MPC=per/individual") judged as amtpd
// judges it, except SIZE against the limit (the caller knows it).
struct MailCheck {
    Reason reason = Reason::none;                               // none: accepted
    std::string detail;                                         // unknown_parameter: its keyword
    std::string sender;                                         // normalised; "" for <>
    std::optional<MpcValue> mpc;
    std::vector<std::pair<std::string, std::string>> parameters; // keyword, value, in order
};
MailCheck check_mail_command(std::string_view argument, bool require_mpc);

// checkEhlo: none, ehlo_syntax or ehlo_not_in_cert.
Reason check_ehlo(const std::vector<std::string>& certificate_names, std::string_view ehlo_name);

// checkPtr: ehlo_syntax for a name that does not normalise, else the core's check_ptr.
Reason check_ptr_answer(const ReverseDnsResult& result, std::string_view ehlo_name);

// scanHeader: the header block, one line per entry without its line ending.
struct HeaderScan {
    bool mpc_field = false;
    std::vector<std::string> carriers;
    std::vector<bool> keep;                                     // one per line
    unsigned forged_results = 0;   // Authentication-Results fields claiming our authserv-id
};
// hostname: the one our Authentication-Results field is written with (its authserv-id).
HeaderScan scan_header(const std::vector<std::string>& lines, const std::string& hostname);

// isLocalDomain: the name normalised, then looked up in the (normalised) list.
bool is_local_domain(const std::vector<std::string>& local_domains, std::string_view domain);

// The names JavaScript uses for a lookup status and a trust kind.
std::optional<DnsStatus> dns_status_by_name(std::string_view name);
TrustKind trust_by_name(std::string_view name);                // unknown: public_ca

// traceFields: Received + Authentication-Results (CRLF-ended) for an accepted message.
struct TraceRequest {
    std::string ehlo_name;
    std::string peer_ip;
    std::string ptr_name;
    std::optional<Identity> identity;
    std::string mpc;                                            // "" for none
    std::string session_id;
    std::string recipient;
    std::string tls_version;
    std::string tls_cipher;
    std::time_t when = 0;
};
struct TraceResult {
    bool peer_ok = false;                                       // peer_ip is an IP address
    Reason mpc_reason = Reason::none;                           // the MPC value's refusal
    std::string fields;                                         // set when both are fine
};
TraceResult trace_fields(const std::string& by_host, const TraceRequest& request);

} // namespace amtp::haraka
