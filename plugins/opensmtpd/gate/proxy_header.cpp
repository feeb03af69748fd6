#include "gate/proxy_header.hpp"

#include <array>

namespace amtp::opensmtpd {

namespace {

constexpr std::array<unsigned char, 12> signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                     0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

void put16(std::string& out, std::uint16_t v)
{
    out += static_cast<char>(v >> 8);
    out += static_cast<char>(v & 0xff);
}

void put_address(std::string& out, const IpAddress& a, bool as_v6)
{
    if (as_v6 && a.is_v4()) {
        out.append(10, '\0');
        out.append(2, '\xff');
    }
    out.append(reinterpret_cast<const char*>(a.bytes()), a.size());
}

} // namespace

std::string proxy_v2_header(const IpAddress& source, std::uint16_t source_port, const IpAddress& destination,
                            std::uint16_t destination_port)
{
    const bool v4 = source.is_v4() && destination.is_v4();
    std::string out(signature.begin(), signature.end());
    out += '\x21';                 // version 2, PROXY
    out += v4 ? '\x11' : '\x21';   // TCP over IPv4 / IPv6
    put16(out, v4 ? 12 : 36);
    put_address(out, source, !v4);
    put_address(out, destination, !v4);
    put16(out, source_port);
    put16(out, destination_port);
    return out;
}

} // namespace amtp::opensmtpd
