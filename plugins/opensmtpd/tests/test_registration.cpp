// The gate-to-filter channel: what the gate encodes the filter decodes unchanged,
// and anything else is refused rather than half-read.
#include "common/registration.hpp"

#include <catch2/catch.hpp>

using namespace amtp;
using namespace amtp::opensmtpd;

TEST_CASE("A verified identity survives the channel, tabs and newlines included")
{
    Registration r;
    r.key = {*IpAddress::parse("127.0.0.2"), 40000};
    r.listener = ListenerKind::private_network;
    r.tls.version = "TLSv1.3";
    r.tls.cipher = "TLS_AES_256_GCM_SHA384";
    Identity i;
    i.names = {"mx.a.test", "alt.a.test"};
    i.subject = "CN=mx.a.test,O=Tab\there\nnewline\\";
    i.issuer = "CN=ca";
    i.serial = "0A";
    i.sha256 = "ab12";
    i.not_before = 100;
    i.not_after = 200;
    i.trust = TrustKind::pinned;
    i.private_network = "isp";
    r.tls.identity.identity = i;
    const std::string line = encode_registration(r);
    CHECK(line.find('\n') == line.size() - 1);
    const auto m = decode_gate_line(line);
    REQUIRE(m);
    REQUIRE(m->registration);
    CHECK(m->record.key == r.key);
    CHECK(m->record.listener == ListenerKind::private_network);
    REQUIRE(m->record.tls.identity.ok());
    const Identity& d = *m->record.tls.identity.identity;
    CHECK(d.names == i.names);
    CHECK(d.subject == i.subject);
    CHECK(d.trust == TrustKind::pinned);
    CHECK(d.private_network == "isp");
    CHECK(d.not_after == 200);
}

TEST_CASE("A refused identity carries its reason")
{
    Registration r;
    r.key = {*IpAddress::parse("::1"), 26};
    r.tls.identity.reason = Reason::cert_expired;
    r.tls.identity.detail = "certificate has expired";
    const auto m = decode_gate_line(encode_registration(r));
    REQUIRE(m);
    CHECK_FALSE(m->record.tls.identity.ok());
    CHECK(m->record.tls.identity.reason == Reason::cert_expired);
    CHECK(m->record.key.str() == "[::1]:26");
}

TEST_CASE("Unregistration and the configuration line")
{
    const SessionKey k{*IpAddress::parse("127.0.0.9"), 1};
    const auto u = decode_gate_line(encode_unregistration(k));
    REQUIRE(u);
    CHECK_FALSE(u->registration);
    CHECK(u->record.key == k);
    const SharedConfig c{"/etc/amtp.ini", "hostname = x\n[dns]\n", "/p.xml", "<amtp-policy>\t</amtp-policy>"};
    const auto d = decode_config_line(encode_config(c));
    REQUIRE(d);
    CHECK(d->ini_text == c.ini_text);
    CHECK(d->policy_text == c.policy_text);
    CHECK_FALSE(decode_gate_line(encode_config(c)));
}

TEST_CASE("Malformed channel lines are refused")
{
    for (const char* l : {"", "R", "R\t127.0.0.1", "U\tnot-an-ip\t1", "U\t127.0.0.1\t70000", "R\t127.0.0.1\t1\tpublic",
                          "X\t127.0.0.1\t1", "U\t127.0.0.1\t1\textra", "C\ta\\q\tb\tc\td"}) {
        INFO(l);
        CHECK_FALSE(decode_gate_line(l));
    }
    CHECK_FALSE(decode_config_line("C\ta\\"));
}

TEST_CASE("smtpd's address forms parse to the same key")
{
    CHECK(SessionKey::parse("127.0.0.2:40000")->port == 40000);
    CHECK(SessionKey::parse("[::1]:25")->address == *IpAddress::parse("::1"));
    CHECK(SessionKey::parse("::1:25")->port == 25);
    CHECK_FALSE(SessionKey::parse("unix:/run/smtpd.sock"));
    CHECK_FALSE(SessionKey::parse(""));
    CHECK(reason_from_name("ptr_mismatch") == Reason::ptr_mismatch);
    CHECK_FALSE(reason_from_name("nonsense"));
}

TEST_CASE("Every reason's name reads back as that reason, the last ones too")
{
    for (int i = 0; i < static_cast<int>(Reason::count_); ++i) {
        const auto r = static_cast<Reason>(i);
        INFO(reason_name(r));
        CHECK(reason_from_name(reason_name(r)) == r);
    }
    CHECK_FALSE(reason_from_name("invalid_reason"));
}
