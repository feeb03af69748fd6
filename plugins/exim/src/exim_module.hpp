// The Exim adapter's model of one Exim process: the site (amtp::Site, loaded once in
// the daemon and inherited by every forked reception process) and the state of the one
// SMTP connection such a process serves. Nothing here includes Exim's headers:
// dlfunc.cpp translates Exim's hooks into these calls, so they can be exercised
// without Exim. Every decision is the core rulebook's (rulebook.hpp): the calls below
// only translate what Exim's ACLs know into the rulebook's stages and back.
#pragma once

#include "amtp/address.hpp"
#include "amtp/mpc.hpp"
#include "amtp/reply.hpp"
#include "amtp/resolver.hpp"
#include "amtp/reverse_dns.hpp"
#include "amtp/rulebook.hpp"
#include "amtp/site.hpp"
#include "amtp/tls_identity.hpp"

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace amtp::exim {

// What the module knows about the connection its process serves: the session's facts
// as the core's rulebook keeps them, plus what only Exim's hooks bring.
struct Connection {
    pid_t pid = 0;                             // the process it belongs to (reset after fork)
    std::vector<std::string> chain;            // DER certificates from tls:cert events, leaf first
    SessionFacts facts;                        // facts.session_id names it in logs and trace fields
    unsigned messages = 0;                     // accepted so far (the message id's suffix)
    // The message accepted at DATA: its MPC, and the fields to prepend, each one header
    // field with LF line ends.
    std::optional<MpcValue> mpc;
    std::string received;
    std::string authentication_results;
    std::string mpc_field;
    // The ACL's remove_header list: AMTP-MPC, and Authentication-Results when a field
    // claimed our authserv-id.
    std::string remove_fields;
};

// A decision as the ACL consumes it: the reply (code decides accept/defer/deny) and
// the log line that explains it.
struct Decision {
    Reply reply;
    std::string log;                           // one key=value line
};

// Reply in the form an Exim ACL `message =` takes: "504 5.7.1 text" (single line).
std::string acl_text(const Reply& reply);

// tls:cert event: the certificate at `depth` (0 = leaf) of the chain being verified.
void record_certificate(Connection& c, unsigned depth, std::string der);

struct EhloInput {
    std::string command;                       // "EHLO mx.a.test" / "HELO ..."
    IpAddress peer;
    IpAddress local;
    unsigned local_port = 0;
    bool tls_active = false;
    std::string leaf_der;                      // Exim's $tls_in_peercert, DER; empty: none
    std::time_t now = 0;
};

// HELO/EHLO: the chain GnuTLS received verified by the site's trust store, then the
// rulebook's EHLO stage; its PTR through `lookup` (called at most once per session
// unless the last answer was temporary).
using PtrLookup = std::function<ReverseDnsResult(const IpAddress&)>;
Decision acl_ehlo(const Site& site, Connection& c, const EhloInput& in, const PtrLookup& lookup);

// MAIL and RCPT: the whole command as Exim received it ($smtp_command), judged by the
// rulebook's MAIL and RCPT stages (Exim has applied its own command sequence).
Decision acl_mail(const Site& site, Connection& c, std::string_view command);
Decision acl_rcpt(const Site& site, Connection& c, std::string_view command);

struct DataInput {
    std::string headers;                       // $message_headers_raw: LF-separated lines
    std::vector<std::string> recipients;
    std::string sender;
    std::string tls_version;                   // "TLSv1.3"
    std::string tls_cipher;
    std::uint64_t size = 0;                    // $message_size
    std::time_t now = 0;
};

// End of DATA: the header scanned by the core, the rulebook's end-of-message stage
// (Exim has checked size and line ends itself). On acceptance c.received,
// c.authentication_results and c.mpc_field hold the fields to prepend and c.mpc the value.
Decision acl_data(const Site& site, Connection& c, const DataInput& in);

// --- Exim as an AMTP client (router + smtp transport) -------------------------------

// Where a domain's AMTP servers are, for a manualroute router: SRV _amtp._tcp (no MX
// or A fallback, draft s4.3), each target's addresses through the core's resolver.
struct Route {
    DnsStatus status = DnsStatus::temporary;   // negative: srv_missing (permanent)
    std::string hosts;                         // Exim host list "ip::port:ip::port" (IPv4)
    std::string error;
    struct Hop {
        IpAddress address;
        std::uint16_t port = 0;
        std::string target;                    // the SRV target the certificate must name
    };
    std::vector<Hop> hops;
};
using SrvLookup = std::function<SrvResult(const std::string& domain)>;
using AddressLookup = std::function<DnsResult(const std::string& name)>;
Route route_domain(std::string_view domain, const SrvLookup& srv, const AddressLookup& addresses);

// The SRV target a hop (address, port) was routed to; empty when unknown.
std::string hop_target(const std::vector<Route::Hop>& hops, const IpAddress& address, unsigned port);

// The server certificate chain (DER, leaf first) checked against the SRV target:
// Reason::none, server_name_mismatch or server_cert_invalid (the core's verify_server).
IdentityResult check_server(const Site& site, const std::vector<std::string>& der_chain,
                            std::string_view target, std::time_t now);

// The MPC an outgoing message carries (the core's outgoing_mpc) over the MPC field
// written when it was received here; empty when none.
std::string outgoing_mpc(const Site& site, std::string_view mpc_header, std::string_view sender);

// "a@b, c@d" ($recipients) as a list.
std::vector<std::string> split_recipients(std::string_view list);

// A local part that is safe as one directory name of a Maildir path (the same rule as
// the core's store_in_maildir); nullopt otherwise.
std::optional<std::string> safe_local_part(std::string_view local_part);

// --- the ${dlfunc} arguments (arguments.cpp) -----------------------------------------

// One entry point's argv as strings (a missing or null argument reads as ""); argv[0]
// is the configuration file.
using Arguments = std::vector<std::string>;

// A certificate as Exim gives it ($tls_in_peercert, $event_data: base64, no PEM
// armour) to DER; empty when it is not base64.
std::string base64_der(std::string_view b64);

// amtp_cert's depth argument: one or two decimal digits; nullopt otherwise.
std::optional<unsigned> certificate_depth(std::string_view text);

// A port or depth as Exim expands it ($received_port, $host_port): strtoul's reading,
// 0 for an empty or non-numeric text.
unsigned number_argument(const std::string& text);

// amtp_ehlo's {CONFIG}{$smtp_command}{$sender_host_address}{$received_ip_address}
// {$received_port}{$tls_in_cipher}{BASE64-DER}; an unparsable address reads as
// IpAddress{}.
EhloInput ehlo_input(const Arguments& args, std::time_t now);

// amtp_data's {CONFIG}{$message_headers_raw}{$recipients}{$sender_address}
// {$tls_in_ver}{$tls_in_cipher}{$message_size}.
DataInput data_input(const Arguments& args, std::time_t now);

// amtp_trace's field by name ("received", "authentication-results", "mpc"), or
// "remove", the list of field names to remove; empty for any other name.
const std::string& trace_field(const Connection& c, std::string_view which);

// amtp_local_part: safe_local_part, and nothing an Exim list would read as anything
// but one plain item (no ':', no leading '!', '^', '+' or '@').
std::optional<std::string> route_local_part(std::string_view local_part);

} // namespace amtp::exim
