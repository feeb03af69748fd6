// DNS rdata as libunbound hands it over (core/src/dns_wire.hpp): it comes from
// whoever controls the zone.
//
// Input: one control byte, then the rdata.
//   [0] the offset at which read_name starts (modulo the rdata's size + 1); bits 2-3
//       and 4-5 also pick the A and AAAA statuses given to combine_addresses.
// The rdata is given, whole, to parse_ptr, parse_a, parse_aaaa and parse_srv.
//
// Invariants: a name read back to wire form gives exactly the bytes read (no label
// is ambiguous: "a.b" as one label never reads as two); the root is "."; a PTR fills
// the rdata; A and AAAA text parses back (IpAddress) to the same bytes; an SRV record
// re-encodes to the rdata; combine_addresses answers when either side has data.
#include "fuzz_common.hpp"

#include "dns_wire.hpp"

#include "amtp/address.hpp"

#include <cstring>
#include <string>

using namespace amtp;

namespace {

std::string to_wire(const std::string& text)
{
    if (text == ".")
        return std::string(1, '\0');
    std::string wire;
    std::size_t start = 0;
    for (;;) {
        const auto dot = text.find('.', start);
        const auto label = text.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        wire += static_cast<char>(label.size());
        wire += label;
        if (dot == std::string::npos)
            break;
        start = dot + 1;
    }
    wire += '\0';
    return wire;
}

DnsStatus status_from(unsigned bits)
{
    switch (bits % 3) {
    case 0: return DnsStatus::answer;
    case 1: return DnsStatus::negative;
    default: return DnsStatus::temporary;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fuzz::Input in(data, size);
    const std::uint8_t control = in.byte();
    const std::string_view rdata = in.rest();

    std::size_t offset = control % (rdata.size() + 1);
    const std::size_t start = offset;
    if (const auto name = dns_wire::read_name(rdata, offset)) {
        FUZZ_CHECK(offset > start && offset <= rdata.size());
        FUZZ_CHECK(!name->empty());
        FUZZ_CHECK(to_wire(*name) == rdata.substr(start, offset - start));
        FUZZ_CHECK(name->size() <= 254);
    } else {
        FUZZ_CHECK(offset == start);
    }

    if (const auto ptr = dns_wire::parse_ptr(rdata))
        FUZZ_CHECK(to_wire(*ptr) == rdata);

    if (const auto a = dns_wire::parse_a(rdata)) {
        FUZZ_CHECK(rdata.size() == 4);
        const auto ip = IpAddress::parse(*a);
        FUZZ_CHECK(ip && ip->is_v4() && std::memcmp(ip->bytes(), rdata.data(), 4) == 0);
    }
    if (const auto aaaa = dns_wire::parse_aaaa(rdata)) {
        FUZZ_CHECK(rdata.size() == 16);
        const auto ip = IpAddress::parse(*aaaa);
        FUZZ_CHECK(ip.has_value());
        // An IPv4-mapped address is stored as IPv4; compare the last four bytes then.
        if (ip->is_v4())
            FUZZ_CHECK(std::memcmp(ip->bytes(), rdata.data() + 12, 4) == 0);
        else
            FUZZ_CHECK(std::memcmp(ip->bytes(), rdata.data(), 16) == 0);
    }
    if (const auto srv = dns_wire::parse_srv(rdata)) {
        std::string wire;
        for (const unsigned v : {unsigned{srv->priority}, unsigned{srv->weight}, unsigned{srv->port}}) {
            wire += static_cast<char>(v >> 8);
            wire += static_cast<char>(v & 0xff);
        }
        wire += to_wire(srv->target);
        FUZZ_CHECK(wire == rdata);
    }

    // Combining the A and AAAA results of one name.
    DnsResult a;
    DnsResult aaaa;
    a.status = status_from(control >> 2);
    aaaa.status = status_from(control >> 4);
    if (a.status == DnsStatus::answer)
        a.records = {"192.0.2.1"};
    if (aaaa.status == DnsStatus::answer)
        aaaa.records = {"2001:db8::1"};
    const auto both = dns_wire::combine_addresses(a, aaaa);
    if (a.status == DnsStatus::answer || aaaa.status == DnsStatus::answer)
        FUZZ_CHECK(both.status == DnsStatus::answer && !both.records.empty());
    else if (a.status == DnsStatus::temporary || aaaa.status == DnsStatus::temporary)
        FUZZ_CHECK(both.status == DnsStatus::temporary);
    else
        FUZZ_CHECK(both.status == DnsStatus::negative);
    return 0;
}
