// Host names as AMTP compares them (profile B2): case-insensitive, without a trailing
// dot, IDNs in A-label form; a client identity never matches a wildcard.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace amtp {

// Lower-cased, trailing dot removed, U-labels converted to A-labels (IDNA2008).
// nullopt when the text is not a syntactically valid host name (LDH labels of 1-63
// octets, 253 octets in all, no leading or trailing hyphen) after conversion.
std::optional<std::string> normalize_host_name(std::string_view name);

// A normalised name with at least two labels and a non-numeric top-level label.
bool is_fully_qualified(std::string_view normalized_name);

// True when `ehlo_name` (raw, normalised here) equals one of the certificate names
// exactly. Certificate names that contain a wildcard never match (the PTR must name
// one host).
bool client_name_matches(const std::vector<std::string>& certificate_names, std::string_view ehlo_name);

// Server identity check for outgoing connections (RFC 6125): exact match, or a
// wildcard "*.example.org" covering exactly one left-most label.
bool server_name_matches(const std::vector<std::string>& certificate_names, std::string_view expected_name);

} // namespace amtp
