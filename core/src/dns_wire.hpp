// Record data as libunbound hands it over (ub_result->data/len: rdata in wire format),
// read by hand. It comes from whoever controls the zone, so every read is bounds-checked
// and anything unexpected is refused rather than guessed at. Internal to the core;
// exposed in a header so that the unit tests can feed it hostile bytes directly.
#pragma once

#include "amtp/resolver.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace amtp::dns_wire {

// RR types and class, host order, as ub_resolve_async takes them.
constexpr int type_a = 1;
constexpr int type_ptr = 12;
constexpr int type_aaaa = 28;
constexpr int type_srv = 33;
constexpr int class_in = 1;

// One uncompressed domain name starting at `offset`; on success `offset` moves past it.
// Text form without the trailing dot; the root name is ".". nullopt when the name runs
// past the data, exceeds 255 octets, uses a compression pointer or an extended label
// type (neither may appear in rdata handed out by libunbound), or has a label byte
// whose text form would be ambiguous or unprintable ('.', '\\', space, controls,
// non-ASCII): a label "a.b" must never be read as two labels.
std::optional<std::string> read_name(std::string_view rdata, std::size_t& offset);

// A PTR rdata: exactly one name filling the whole rdata.
std::optional<std::string> parse_ptr(std::string_view rdata);

// A: exactly 4 octets, as dotted text. AAAA: exactly 16 octets, as RFC 5952 text.
std::optional<std::string> parse_a(std::string_view rdata);
std::optional<std::string> parse_aaaa(std::string_view rdata);

// SRV (RFC 2782): priority, weight, port, then the target name filling the rest.
// The target is returned as read (not normalised); "." means "no service".
std::optional<SrvRecord> parse_srv(std::string_view rdata);

// Not wire format, but internal too: the A and AAAA results of one name as one result.
// An answer when either has data (`partial` when the other failed temporarily);
// temporary when either failed temporarily and neither answered; else negative.
DnsResult combine_addresses(DnsResult a, DnsResult aaaa);

} // namespace amtp::dns_wire
