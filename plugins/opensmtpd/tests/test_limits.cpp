// Connections past the limits cost no TLS handshake: the gate's count, per source
// (an IPv6 client per /64) and in all.
#include "gate/limits.hpp"

#include <catch2/catch.hpp>

using namespace amtp;
using namespace amtp::opensmtpd;
using Refusal = ConnectionLimits::Refusal;

namespace {
IpAddress ip(const char* text)
{
    return *IpAddress::parse(text);
}
} // namespace

TEST_CASE("Connections past the limits: max-connections-per-ip counts each IPv4 address")
{
    ConnectionLimits l(10, 2);
    CHECK(l.admit(ip("192.0.2.1")) == Refusal::none);
    CHECK(l.admit(ip("192.0.2.1")) == Refusal::none);
    CHECK(l.admit(ip("192.0.2.1")) == Refusal::max_connections_per_ip);
    CHECK(l.admit(ip("192.0.2.2")) == Refusal::none);
    l.release(ip("192.0.2.1"));
    CHECK(l.admit(ip("192.0.2.1")) == Refusal::none);
    CHECK(l.total() == 3);
}

TEST_CASE("Connections past the limits: an IPv6 client is counted per /64")
{
    ConnectionLimits l(10, 2);
    CHECK(l.admit(ip("2001:db8:1:2::1")) == Refusal::none);
    CHECK(l.admit(ip("2001:db8:1:2:ffff:ffff:ffff:fffe")) == Refusal::none);
    CHECK(l.admit(ip("2001:db8:1:2:aaaa::9")) == Refusal::max_connections_per_ip);
    CHECK(l.admit(ip("2001:db8:1:3::1")) == Refusal::none); // the next /64
    CHECK(ConnectionLimits::source_of(ip("2001:db8:1:2:aaaa::9")) == ip("2001:db8:1:2::"));
    CHECK(ConnectionLimits::source_of(ip("::ffff:192.0.2.7")) == ip("192.0.2.7"));
}

TEST_CASE("Connections past the limits: max-connections counts every source; a release frees a slot")
{
    ConnectionLimits l(3, 3);
    CHECK(l.admit(ip("192.0.2.1")) == Refusal::none);
    CHECK(l.admit(ip("192.0.2.2")) == Refusal::none);
    CHECK(l.admit(ip("2001:db8::1")) == Refusal::none);
    CHECK(l.admit(ip("192.0.2.3")) == Refusal::max_connections);
    CHECK(ConnectionLimits::name(Refusal::max_connections) == "max-connections");
    l.release(ip("2001:db8::2")); // the same /64
    CHECK(l.admit(ip("192.0.2.3")) == Refusal::none);
    l.release(ip("198.51.100.1")); // never admitted: no effect
    CHECK(l.total() == 3);
}
