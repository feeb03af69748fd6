#include "amtp/identity_codec.hpp"

#include <catch2/catch.hpp>

using namespace amtp;

namespace {
BoundIdentity sample()
{
    BoundIdentity b;
    b.identity.names = {"mx.a.test", "mail.a.test"};
    b.identity.subject = "CN=mx.a.test,O=Test A";
    b.identity.issuer = "CN=Test CA";
    b.identity.serial = "0A1B";
    b.identity.sha256 = std::string(64, 'c');
    b.identity.not_before = 1000;
    b.identity.not_after = 2000;
    b.identity.trust = TrustKind::pinned;
    b.identity.private_network = "isp";
    b.listener = ListenerKind::private_network;
    b.peer = *IpAddress::parse("127.0.0.8");
    return b;
}
} // namespace

TEST_CASE("A resumed session keeps the identity its full handshake verified")
{
    const std::string data = encode_identity(sample());
    const IdentityResult r = resumed_identity(data, ListenerKind::private_network, *IpAddress::parse("127.0.0.8"), 1500);
    REQUIRE(r.ok());
    CHECK(r.identity->names == std::vector<std::string>{"mx.a.test", "mail.a.test"});
    CHECK(r.identity->trust == TrustKind::pinned);
    CHECK(r.identity->private_network == "isp");
    CHECK(r.identity->not_after == 2000);
}

TEST_CASE("A resumed session from another address or listener is refused")
{
    const std::string data = encode_identity(sample());
    CHECK(resumed_identity(data, ListenerKind::private_network, *IpAddress::parse("127.0.0.9"), 1500).reason ==
          Reason::cert_invalid);
    CHECK(resumed_identity(data, ListenerKind::public_network, *IpAddress::parse("127.0.0.8"), 1500).reason ==
          Reason::cert_invalid);
}

TEST_CASE("A resumed session whose certificate expired since is refused with cert_expired")
{
    const std::string data = encode_identity(sample());
    CHECK(resumed_identity(data, ListenerKind::private_network, *IpAddress::parse("127.0.0.8"), 2001).reason ==
          Reason::cert_expired);
}

TEST_CASE("Damaged identity data is refused, never a crash")
{
    const std::string good = encode_identity(sample());
    CHECK_FALSE(decode_identity(""));
    CHECK_FALSE(decode_identity("AMTPID1"));
    CHECK_FALSE(decode_identity(good + "x"));
    for (std::size_t cut = 0; cut < good.size(); ++cut)
        CHECK_FALSE(decode_identity(good.substr(0, cut)));
    std::string flipped = good;
    flipped[7] = '\x09'; // listener kind out of range
    CHECK_FALSE(decode_identity(flipped));
}
