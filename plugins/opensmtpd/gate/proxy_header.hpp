// The PROXY protocol version 2 header (haproxy's proxy-protocol.txt, section 2.2) the
// gate sends first on each loopback connection, so smtpd sees the client's real
// address and port: the key under which the gate registered the identity.
#pragma once

#include "amtp/address.hpp"

#include <cstdint>
#include <string>

namespace amtp::opensmtpd {

// PROXY command over TCP, IPv4 or IPv6 by the source's family (a mixed pair is sent
// as IPv6 with the IPv4 address mapped). No TLVs: smtpd ignores them.
std::string proxy_v2_header(const IpAddress& source, std::uint16_t source_port, const IpAddress& destination,
                            std::uint16_t destination_port);

} // namespace amtp::opensmtpd
