// Trace fields a receiving AMTP server writes (profile B7, draft s4.4.4): Received
// "with AMTP" naming the verified identity and the MPC, Authentication-Results (RFC
// 8601, method x-amtp), and the MPC field on final delivery. Every peer-supplied
// string is made printable; long fields are folded.
#pragma once

#include "amtp/address.hpp"
#include "amtp/mpc.hpp"
#include "amtp/reply.hpp"
#include "amtp/tls_identity.hpp"

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace amtp {

struct TraceInfo {
    std::string by_host;                 // our hostname
    std::string ehlo_name;
    IpAddress peer_address;
    std::string ptr_name;                // empty on private listeners (PTR skipped)
    std::optional<Identity> identity;
    std::optional<MpcValue> mpc;
    std::string session_id;
    std::string recipient;               // "for <...>" when there is exactly one
    std::string tls_version;             // "TLSv1.3"
    std::string tls_cipher;
    std::time_t when = 0;
};

// The authserv-id our Authentication-Results field names (RFC 8601 s2.5): the
// configured hostname, "localhost" when there is none. HeaderScanner is given the same
// value, so incoming fields claiming it are removed before ours is added.
std::string authserv_id(std::string_view hostname);

// Each returns one complete field, folded, ending in CRLF.
std::string received_field(const TraceInfo& info);
// result: "pass" or "fail" (another RFC 8601 result keyword is accepted; anything else
// throws std::invalid_argument); reason: Reason::none on pass.
std::string authentication_results_field(const std::string& authserv_id, const TraceInfo& info,
                                         std::string_view result, Reason reason);
std::string mpc_field(const MpcValue& value);

// RFC 5322 date-time, e.g. "Mon, 23 Nov 2026 18:16:33 +0000".
std::string rfc5322_date(std::time_t when);

} // namespace amtp
