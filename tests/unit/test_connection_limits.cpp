// Connections past the limits cost no TLS handshake: the count amtpd and the OpenSMTPD
// gate admit connections by, per client (an IPv6 client per limits.ipv6-prefix-length
// network) and in all.
#include "amtp/connection_limits.hpp"

#include <catch2/catch.hpp>

using namespace amtp;
using Refusal = ConnectionLimits::Refusal;

namespace {
IpAddress ip(const char* text)
{
    return *IpAddress::parse(text);
}

Limits limits(unsigned total, unsigned per_ip, unsigned prefix = 64)
{
    Limits l;
    l.max_connections = total;
    l.max_connections_per_ip = per_ip;
    l.ipv6_prefix_length = prefix;
    return l;
}
} // namespace

TEST_CASE("Connections past the limits: max-connections-per-ip counts each IPv4 address", "[limits]")
{
    ConnectionLimits l(limits(10, 2));
    CHECK(l.admit(ip("192.0.2.1")).refusal == Refusal::none);
    const auto second = l.admit(ip("192.0.2.1"));
    CHECK(second.refusal == Refusal::none);
    CHECK(l.admit(ip("192.0.2.1")).refusal == Refusal::max_connections_per_ip);
    CHECK(l.admit(ip("192.0.2.2")));
    l.release(second.key);
    CHECK(l.admit(ip("192.0.2.1")));
    CHECK(l.total() == 3);
}

TEST_CASE("Connections past the limits: an IPv6 client is counted per limits.ipv6-prefix-length network", "[limits]")
{
    ConnectionLimits l(limits(10, 2));
    CHECK(l.admit(ip("2001:db8:1:2::1")));
    CHECK(l.admit(ip("2001:db8:1:2:ffff:ffff:ffff:fffe")));
    const auto third = l.admit(ip("2001:db8:1:2:aaaa::9"));
    CHECK(third.refusal == Refusal::max_connections_per_ip);
    CHECK(third.key == ip("2001:db8:1:2::"));
    CHECK(l.admit(ip("2001:db8:1:3::1"))); // the next /64
    CHECK(l.admit(ip("::ffff:192.0.2.7")).key == ip("192.0.2.7"));

    ConnectionLimits wide(limits(10, 2, 48));
    CHECK(wide.admit(ip("2001:db8:1:2::1")));
    CHECK(wide.admit(ip("2001:db8:1:3::1")));
    CHECK(wide.admit(ip("2001:db8:1:4::1")).refusal == Refusal::max_connections_per_ip);
}

TEST_CASE("Connections past the limits: max-connections counts every client; a release frees a slot", "[limits]")
{
    ConnectionLimits l(limits(3, 3));
    CHECK(l.admit(ip("192.0.2.1")));
    CHECK(l.admit(ip("192.0.2.2")));
    const auto v6 = l.admit(ip("2001:db8::1"));
    CHECK(v6);
    CHECK(l.admit(ip("192.0.2.3")).refusal == Refusal::max_connections);
    CHECK(ConnectionLimits::name(Refusal::max_connections) == "max-connections");
    CHECK(ConnectionLimits::name(Refusal::max_connections_per_ip) == "max-connections-per-ip");
    l.release(v6.key);
    CHECK(l.admit(ip("192.0.2.3")));
    l.release(ip("198.51.100.1")); // never admitted: no effect
    CHECK(l.total() == 3);
}

TEST_CASE("Connections past the limits: a reload changes the limits and keeps the open connections counted", "[limits]")
{
    ConnectionLimits l(limits(10, 1));
    const auto open = l.admit(ip("2001:db8:1:2::1"));
    REQUIRE(open);
    l.configure(limits(10, 1, 128)); // counted per address from now on
    CHECK(l.admit(ip("2001:db8:1:2::2"))); // a different /128
    l.release(open.key);                   // released under the key it was counted by
    CHECK(l.total() == 1);
}
