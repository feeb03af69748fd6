#include <catch2/catch.hpp>

#include "amtp/trace_headers.hpp"

#include <string>

using namespace amtp;

namespace {

constexpr std::time_t nov23 = 1795457793; // Mon, 23 Nov 2026 18:16:33 UTC
const std::string fingerprint(64, 'a');

TraceInfo sample()
{
    TraceInfo t;
    t.by_host = "mx.b.test";
    t.ehlo_name = "mx.a.test";
    t.peer_address = *IpAddress::parse("127.0.0.2");
    t.ptr_name = "mx.a.test";
    Identity id;
    id.names = {"mx.a.test"};
    id.subject = "CN=mx.a.test";
    id.issuer = "CN=Test Intermediate";
    id.serial = "1A2B";
    id.sha256 = fingerprint;
    t.identity = id;
    t.mpc = MpcValue{"per", "individual"};
    t.session_id = "s4f2c9a01";
    t.recipient = "bob@b.test";
    t.tls_version = "TLSv1.3";
    t.tls_cipher = "TLS_AES_256_GCM_SHA384";
    t.when = nov23;
    return t;
}

// RFC 5322 s2.2.3: unfolding removes every CRLF that is followed by white space. The
// folds replace a space between tokens, so the TAB after them is read back as one.
std::string unfold(const std::string& field)
{
    std::string out;
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field.compare(i, 3, "\r\n\t") == 0) {
            out += ' ';
            i += 2;
            continue;
        }
        out += field[i];
    }
    return out;
}

// What every field we write must be: printable ASCII and TAB only, CR only in CRLF,
// every CRLF but the last followed by the TAB of folding, every line shorter than 998
// characters, comments balanced and quoted strings closed (RFC 5322 lexical rules).
void require_well_formed(const std::string& field)
{
    INFO(field);
    REQUIRE(field.size() >= 2);
    REQUIRE(field.compare(field.size() - 2, 2, "\r\n") == 0);
    std::size_t line_start = 0;
    for (std::size_t i = 0; i < field.size(); ++i) {
        const auto c = static_cast<unsigned char>(field[i]);
        if (c == '\r') {
            REQUIRE(i + 1 < field.size());
            REQUIRE(field[i + 1] == '\n');
            REQUIRE(i - line_start < 998);
            if (i + 2 < field.size())
                REQUIRE(field[i + 2] == '\t');
            line_start = i + 2;
            ++i;
            continue;
        }
        REQUIRE(c != '\n');
        REQUIRE((c == '\t' || (c >= 0x20 && c < 0x7f)));
    }

    const std::string text = unfold(field);
    int depth = 0;
    bool quoted = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if ((depth > 0 || quoted) && c == '\\') {
            ++i;   // quoted-pair
            REQUIRE(i < text.size());
            continue;
        }
        if (quoted) {
            if (c == '"')
                quoted = false;
        } else if (c == '(') {
            ++depth;
        } else if (c == ')') {
            REQUIRE(depth > 0);
            --depth;
        } else if (c == '"' && depth == 0) {
            quoted = true;
        }
    }
    REQUIRE(depth == 0);
    REQUIRE_FALSE(quoted);
}

} // namespace

TEST_CASE("Received names the verified certificate and the MPC")
{
    const std::string f = received_field(sample());
    require_well_formed(f);
    CHECK(f ==
          "Received: from mx.a.test (mx.a.test [127.0.0.2])\r\n"
          "\tby mx.b.test with AMTP id s4f2c9a01\r\n"
          "\t(TLSv1.3 TLS_AES_256_GCM_SHA384; verified; subject=\"CN=mx.a.test\";\r\n"
          "\tissuer=\"CN=Test Intermediate\"; serial=1A2B;\r\n"
          "\tsha256=" + fingerprint + ";\r\n"
          "\tmpc=per/individual)\r\n"
          "\tfor <bob@b.test>; Mon, 23 Nov 2026 18:16:33 +0000\r\n");
}

TEST_CASE("Received folds at 78 characters where the parts allow it")
{
    TraceInfo t = sample();
    t.identity->sha256 = "ab12";
    const std::string f = received_field(t);
    require_well_formed(f);
    std::size_t start = 0;
    for (std::size_t end = f.find("\r\n"); end != std::string::npos; end = f.find("\r\n", start)) {
        CHECK(end - start <= 78);
        start = end + 2;
    }
}

TEST_CASE("Received on a private listener says unverified and names the private network")
{
    TraceInfo t = sample();
    t.ptr_name.clear();
    t.peer_address = *IpAddress::parse("2001:db8::5");
    t.identity->trust = TrustKind::private_ca;
    t.identity->private_network = "office";
    const std::string f = unfold(received_field(t));
    CHECK(f.find("from mx.a.test (unverified [IPv6:2001:db8::5]; private network office)") != std::string::npos);
}

TEST_CASE("Received says pinned for a pinned self-signed certificate")
{
    TraceInfo t = sample();
    t.identity->trust = TrustKind::pinned;
    t.identity->private_network = "customers";
    const std::string f = unfold(received_field(t));
    CHECK(f.find("; pinned; subject=") != std::string::npos);
    CHECK(f.find("private network customers)") != std::string::npos);
    const std::string ar = unfold(authentication_results_field("mx.b.test", t, "pass", Reason::none));
    CHECK(ar.find("x-amtp=pass (pinned certificate; private network customers) smtp.helo=") != std::string::npos);
}

TEST_CASE("Received without a recipient or MPC still ends in the date")
{
    TraceInfo t = sample();
    t.recipient.clear();
    t.mpc.reset();
    t.session_id.clear();
    const std::string f = received_field(t);
    require_well_formed(f);
    const std::string u = unfold(f);
    CHECK(u.find(" for ") == std::string::npos);
    CHECK(u.find("mpc=") == std::string::npos);
    CHECK(u.find(" id ") == std::string::npos);
    CHECK(u.find("sha256=" + fingerprint + "); Mon, 23 Nov 2026 18:16:33 +0000\r\n") != std::string::npos);
}

TEST_CASE("Received cannot be broken by hostile peer strings")
{
    const std::string nasty = std::string("evil)\r\nX-Injected: yes\r\n\r\n(\\") + '\0' + "\"(((";
    TraceInfo t = sample();
    t.ehlo_name = nasty;
    t.ptr_name = "ptr)(\n.test";
    t.identity->subject = "CN=" + nasty;
    t.identity->issuer = "O=\\)\\";
    t.identity->serial = "1A\r\n2B";
    t.identity->sha256 = ")" + std::string(2000, 'f');
    t.identity->trust = TrustKind::private_ca;
    t.identity->private_network = "net)\r\n";
    t.recipient = "<bob\r\nX-Injected: yes@b.test>";
    t.tls_cipher = "AES(";
    t.session_id = "id\r\n(x)";
    const std::string f = received_field(t);
    require_well_formed(f);
    // A peer's bytes appear only in their escaped form.
    CHECK(f.find("\r\nX-Injected") == std::string::npos);
    CHECK(f.find('\0') == std::string::npos);
    CHECK(unfold(f).find("\\\\x0d\\\\x0aX-Injected") != std::string::npos);
    // The address literal takes the place of an EHLO name that is not a domain.
    CHECK(f.rfind("Received: from [127.0.0.2] (", 0) == 0);
}

TEST_CASE("Received with a very long EHLO keeps every line under 998 characters")
{
    TraceInfo t = sample();
    std::string long_name;
    for (int i = 0; i < 1500; ++i)
        long_name += "a.";
    long_name += "test";
    t.ehlo_name = long_name;
    t.identity->subject = "CN=" + std::string(3000, 'x');
    t.recipient = std::string(3000, 'r') + "@b.test";
    const std::string f = received_field(t);
    require_well_formed(f);
    CHECK(f.size() < 3000);
}

TEST_CASE("Authentication-Results reports a pass with the identity and the MPC")
{
    const std::string f = authentication_results_field("mx.b.test", sample(), "pass", Reason::none);
    require_well_formed(f);
    const std::string u = unfold(f);
    CHECK(u.rfind("Authentication-Results: mx.b.test; x-amtp=pass smtp.helo=mx.a.test", 0) == 0);
    CHECK(u.find(" policy.mpc=\"per/individual\"") != std::string::npos);
    CHECK(u.find(" policy.cert-subject=\"CN=mx.a.test\"") != std::string::npos);
    CHECK(u.find(" policy.cert-issuer=\"CN=Test Intermediate\"") != std::string::npos);
    CHECK(u.find(" policy.cert-serial=1A2B") != std::string::npos);
    CHECK(u.find(" policy.cert-fingerprint=" + fingerprint + "\r\n") != std::string::npos);
    CHECK(u.find("reason") == std::string::npos);
}

TEST_CASE("Authentication-Results reports a fail with the reason name")
{
    TraceInfo t = sample();
    t.identity.reset();
    const std::string f = authentication_results_field("mx.b.test", t, "fail", Reason::ptr_mismatch);
    require_well_formed(f);
    const std::string u = unfold(f);
    CHECK(u.rfind("Authentication-Results: mx.b.test; x-amtp=fail (ptr_mismatch) reason=\"", 0) == 0);
    CHECK(u.find("smtp.helo=mx.a.test") != std::string::npos);
    CHECK(u.find("policy.cert-") == std::string::npos);
}

TEST_CASE("Authentication-Results names a private network in a comment")
{
    TraceInfo t = sample();
    t.identity->trust = TrustKind::private_ca;
    t.identity->private_network = "office";
    const std::string u = unfold(authentication_results_field("mx.b.test", t, "pass", Reason::none));
    CHECK(u.find("x-amtp=pass (private network office) smtp.helo=") != std::string::npos);
}

TEST_CASE("Authentication-Results quotes values that are not tokens")
{
    TraceInfo t = sample();
    t.ehlo_name = "bad name\"\\\r\n";
    t.identity->subject = "CN=a(b);c";
    const std::string f = authentication_results_field("mx b", t, "pass", Reason::none);
    require_well_formed(f);
    const std::string u = unfold(f);
    CHECK(u.rfind("Authentication-Results: \"mx b\"; ", 0) == 0);
    CHECK(u.find("smtp.helo=\"bad name\\\"\\\\\\\\x0d\\\\x0a\"") != std::string::npos);
    CHECK(u.find("policy.cert-subject=\"CN=a(b);c\"") != std::string::npos);
}

TEST_CASE("Authentication-Results refuses a result that is not an RFC 8601 keyword")
{
    CHECK_THROWS_AS(authentication_results_field("mx.b.test", sample(), "pass\r\nX: y", Reason::none),
                    std::invalid_argument);
}

TEST_CASE("The MPC field is written as the draft spells it")
{
    CHECK(mpc_field(MpcValue{"per", "individual"}) == "MPC: per/individual\r\n");
    CHECK(mpc_field(MpcValue{"net", "autoresponse"}) == "MPC: net/autoresponse\r\n");
    CHECK(mpc_field(MpcValue{"per\r\n", "x"}) == "MPC: per\\x0d\\x0a/x\r\n");
}

TEST_CASE("Dates are RFC 5322 in UTC with English names")
{
    CHECK(rfc5322_date(nov23) == "Mon, 23 Nov 2026 18:16:33 +0000");
    CHECK(rfc5322_date(0) == "Thu, 1 Jan 1970 00:00:00 +0000");
    CHECK(rfc5322_date(951868799) == "Tue, 29 Feb 2000 23:59:59 +0000");
    CHECK(rfc5322_date(-5) == "Thu, 1 Jan 1970 00:00:00 +0000");
}
