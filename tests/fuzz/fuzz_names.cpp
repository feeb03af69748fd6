// Host names as AMTP compares them (profile B2) and IP address text: the EHLO
// argument, mailbox domains, certificate names and PTR names all pass through
// normalize_host_name (IDNA2008 through libidn2), addresses through IpAddress.
//
// Input: the text, whole.
//
// Invariants: a normalised name is lower-case LDH labels of 1-63 octets (no leading
// or trailing hyphen), 253 octets at most, no trailing dot, and normalises to itself;
// a name matches itself as a client name exactly when it holds no wildcard, and as a
// server name always; an address's str() parses back equal; a network contains its
// own text's address when that is a bare address.
#include "fuzz_common.hpp"

#include "amtp/address.hpp"
#include "amtp/names.hpp"

#include <string>

using namespace amtp;

namespace {

void check_ldh(const std::string& name)
{
    FUZZ_CHECK(!name.empty() && name.size() <= 253);
    FUZZ_CHECK(name.back() != '.');
    std::size_t start = 0;
    for (;;) {
        const auto dot = name.find('.', start);
        const auto label = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        FUZZ_CHECK(!label.empty() && label.size() <= 63);
        FUZZ_CHECK(label.front() != '-' && label.back() != '-');
        for (const char c : label)
            FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
        if (dot == std::string::npos)
            break;
        start = dot + 1;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    if (const auto name = normalize_host_name(text)) {
        check_ldh(*name);
        const auto again = normalize_host_name(*name);
        FUZZ_CHECK(again && *again == *name);
        (void)is_fully_qualified(*name);
        FUZZ_CHECK(client_name_matches({*name}, text));
        FUZZ_CHECK(server_name_matches({*name}, *name));
    }
    // As a certificate name (a wildcard never matches a client).
    const std::string as_cert(text);
    if (as_cert.find('*') != std::string::npos)
        FUZZ_CHECK(!client_name_matches({as_cert}, as_cert));

    if (const auto ip = IpAddress::parse(text)) {
        const auto again = IpAddress::parse(ip->str());
        FUZZ_CHECK(again && *again == *ip);
        FUZZ_CHECK(ip->size() == (ip->is_v4() ? 4u : 16u));
        const auto net = IpNetwork::parse(text);
        FUZZ_CHECK(net && net->contains(*ip));
    }
    if (const auto net = IpNetwork::parse(text)) {
        const auto again = IpNetwork::parse(net->str());
        FUZZ_CHECK(again && again->str() == net->str());
    }
    if (const auto ep = Endpoint::parse(text)) {
        const auto again = Endpoint::parse(ep->str());
        FUZZ_CHECK(again && again->address == ep->address && again->port == ep->port);
    }
    return 0;
}
