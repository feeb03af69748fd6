#include "amtp/address.hpp"

#include <catch2/catch.hpp>

using namespace amtp;

TEST_CASE("IPv4 and IPv6 addresses parse and print canonically")
{
    CHECK(IpAddress::parse("127.0.0.2")->str() == "127.0.0.2");
    CHECK(IpAddress::parse("2001:DB8:0:0::1")->str() == "2001:db8::1");
    CHECK(IpAddress::parse("[::1]")->is_loopback());
    CHECK(IpAddress::parse("::ffff:10.1.2.3")->is_v4()); // mapped addresses compare as IPv4
    CHECK(*IpAddress::parse("::ffff:10.1.2.3") == *IpAddress::parse("10.1.2.3"));
    for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "::g", "1.2.3.4 ", "[1.2.3.4"}) {
        INFO(bad);
        CHECK_FALSE(IpAddress::parse(bad));
    }
}

TEST_CASE("Networks contain exactly the addresses under their prefix")
{
    const auto n = IpNetwork::parse("10.8.0.0/16");
    REQUIRE(n);
    CHECK(n->contains(*IpAddress::parse("10.8.255.1")));
    CHECK_FALSE(n->contains(*IpAddress::parse("10.9.0.1")));
    CHECK_FALSE(n->contains(*IpAddress::parse("::1")));
    CHECK(IpNetwork::parse("2001:db8::/33")->contains(*IpAddress::parse("2001:db8:7fff::1")));
    CHECK_FALSE(IpNetwork::parse("2001:db8::/33")->contains(*IpAddress::parse("2001:db8:8000::1")));
    CHECK(IpNetwork::parse("10.0.0.0/0")->contains(*IpAddress::parse("192.0.2.1")));
    CHECK(IpNetwork::parse("192.0.2.7")->contains(*IpAddress::parse("192.0.2.7")));
    CHECK(IpNetwork::parse("10.0.0.0/12")->contains(*IpAddress::parse("10.15.0.1")));
    CHECK_FALSE(IpNetwork::parse("10.0.0.0/12")->contains(*IpAddress::parse("10.16.0.1")));
    for (const char* bad : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "::/129", "/8"}) {
        INFO(bad);
        CHECK_FALSE(IpNetwork::parse(bad));
    }
}

TEST_CASE("Listener endpoints need an address and a port")
{
    CHECK(Endpoint::parse("127.0.0.3:2626")->str() == "127.0.0.3:2626");
    CHECK(Endpoint::parse("[::1]:26")->str() == "[::1]:26");
    for (const char* bad : {"127.0.0.3", "127.0.0.3:", "127.0.0.3:0", "127.0.0.3:65536", "::1:26", "[::1]26", "host:25"}) {
        INFO(bad);
        CHECK_FALSE(Endpoint::parse(bad));
    }
}
