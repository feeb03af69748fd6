// The client's PTR name(s): the third leg of AMTP's identity binding (certificate name,
// EHLO name, PTR name). Optional forward confirmation keeps only PTR names whose
// A/AAAA records lead back to the address (dns.forward-confirm).
#pragma once

#include "amtp/address.hpp"
#include "amtp/reply.hpp"
#include "amtp/resolver.hpp"

#include <functional>
#include <string>
#include <vector>

namespace amtp {

// "4.3.2.1.in-addr.arpa" / nibble form under "ip6.arpa".
std::string ptr_query_name(const IpAddress& address);

struct ReverseDnsResult {
    DnsStatus status = DnsStatus::temporary;
    std::vector<std::string> names;   // normalised; only confirmed ones with forward_confirm
    std::vector<std::string> unconfirmed; // PTR names whose A/AAAA did not lead back
    bool forward_checked = false;
    std::string error;
    std::vector<std::string> unchecked;   // PTR names whose forward lookup failed temporarily
};

// The verdict for an EHLO name (already normalised): Reason::none when one of the PTR
// names equals it; ptr_missing (no PTR), ptr_unconfirmed (PTR names exist but none
// resolves back), ptr_mismatch, or dns_temporary (also when the EHLO name is among the
// `unchecked` ones: a retry may confirm it).
Reason check_ptr(const ReverseDnsResult& result, std::string_view ehlo_name);

void lookup_client_names(Resolver& resolver, const IpAddress& address, bool forward_confirm,
                         std::function<void(ReverseDnsResult)> done);
ReverseDnsResult lookup_client_names_blocking(Resolver& resolver, const IpAddress& address, bool forward_confirm);

} // namespace amtp
