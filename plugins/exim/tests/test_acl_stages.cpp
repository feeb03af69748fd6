// The Exim adapter's ACL stages, without Exim: each ACL verdict must be the core's
// reply for the rule (so Exim answers as amtpd does). Real certificates from the test PKI,
// real policy and settings files; the PTR answer is handed in as the value a resolver
// would return (as the core's own session tests do).
#include "exim_module.hpp"

#include "support/pki.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <fstream>

using namespace amtp;
using namespace amtp::exim;
using amtp::test::der_chain;
using amtp::test::pki_file;

namespace {

std::string write_file(const std::string& name, const std::string& text)
{
    // One directory per process: ctest runs each test case as its own process, in
    // parallel, and one must not truncate the files another is reading.
    const std::string dir = std::string(AMTP_TEST_WORK_DIR) + "/exim-unit-" + std::to_string(::getpid());
    (void)std::system(("mkdir -p '" + dir + "'").c_str());
    const std::string path = dir + "/" + name;
    std::ofstream(path) << text;
    return path;
}

std::shared_ptr<const Site> site()
{
    static std::shared_ptr<const Site> s = [] {
        const std::string policy = write_file("policy.xml", R"(<amtp-policy>
  <advertise> <deny mpc="*/optout"/> </advertise>
  <recipient address="nocom@b.test"> <deny mpc="com/*"/> </recipient>
</amtp-policy>
)");
        const std::string ini = write_file("b.ini", "hostname = mx.b.test\n[listen]\npublic = 127.0.0.3:2626\n"
                                                    "private = 127.0.0.3:2687\n[tls]\ncertificate = " +
                                                        pki_file("server-b.chain.pem") + "\nkey = " +
                                                        pki_file("server-b.key") + "\ntrusted-ca = " +
                                                        pki_file("public-root.pem") + "\nprivate-ca = " +
                                                        pki_file("private-root.pem") +
                                                        "\n[delivery]\nlocal-domain = b.test\nrecipients = file:" +
                                                        write_file("users", "bob@b.test\nnocom@b.test\n") +
                                                        "\n[policy]\nfile = " + policy + "\n");
        return Site::load(ini, MpcCarrier::header_only);
    }();
    return s;
}

const std::time_t now = 1795000000; // 2026-11-18: inside the test certificates' validity

EhloInput ehlo(const std::string& command, const std::string& cert = "client", unsigned port = 2626)
{
    EhloInput in;
    in.command = command;
    in.peer = *IpAddress::parse("127.0.0.2");
    in.local = *IpAddress::parse("127.0.0.3");
    in.local_port = port;
    in.tls_active = true;
    in.leaf_der = der_chain(pki_file(cert + ".chain.pem")).front();
    in.now = now;
    return in;
}

// What GnuTLS reports through tls:cert events: the whole chain the client sent.
void events_for(Connection& c, const std::string& cert)
{
    const auto chain = der_chain(pki_file(cert + ".chain.pem"));
    for (std::size_t depth = chain.size(); depth-- > 0;)
        record_certificate(c, static_cast<unsigned>(depth), chain[depth]);
}

ReverseDnsResult ptr_answer(std::vector<std::string> names, DnsStatus status = DnsStatus::answer)
{
    ReverseDnsResult r;
    r.status = status;
    r.names = std::move(names);
    return r;
}

PtrLookup answers(ReverseDnsResult r, int* calls = nullptr)
{
    return [r, calls](const IpAddress&) {
        if (calls)
            ++*calls;
        return r;
    };
}

Connection authenticated()
{
    Connection c;
    events_for(c, "client");
    const Decision d = acl_ehlo(*site(), c, ehlo("EHLO mx.a.test"), answers(ptr_answer({"mx.a.test"})));
    REQUIRE(d.reply.code == 250);
    return c;
}

DataInput data(const std::string& headers, std::vector<std::string> rcpts = {"bob@b.test"})
{
    DataInput in;
    in.headers = headers;
    in.recipients = std::move(rcpts);
    in.sender = "alice@a.test";
    in.tls_version = "TLSv1.3";
    in.now = now;
    return in;
}

} // namespace

TEST_CASE("Exim: HELO is refused with 504 5.5.1, the core's reply")
{
    Connection c;
    const Decision d = acl_ehlo(*site(), c, ehlo("HELO mx.a.test"), answers(ptr_answer({})));
    CHECK(acl_text(d.reply) == acl_text(reply_for(Reason::helo_refused)));
    CHECK(acl_text(d.reply).rfind("504 5.5.1 ", 0) == 0);
    CHECK(d.log.find("reason=helo_refused") != std::string::npos);
}

TEST_CASE("Exim: EHLO bound to certificate and PTR is accepted")
{
    Connection c;
    events_for(c, "client");
    const Decision d = acl_ehlo(*site(), c, ehlo("EHLO mx.a.test"), answers(ptr_answer({"mx.a.test"})));
    CHECK(d.reply.code == 250);
    CHECK(c.facts.authenticated);
    CHECK(c.facts.ptr_name == "mx.a.test");
}

TEST_CASE("Exim: the chain from tls:cert events verifies, the leaf alone does not reach the root")
{
    Connection c;
    Decision d = acl_ehlo(*site(), c, ehlo("EHLO mx.a.test"), answers(ptr_answer({"mx.a.test"})));
    CHECK(d.reply.reason == Reason::untrusted_issuer);
    events_for(c, "client");
    d = acl_ehlo(*site(), c, ehlo("EHLO mx.a.test"), answers(ptr_answer({"mx.a.test"})));
    CHECK(d.reply.code == 250);
}

TEST_CASE("Exim: a chain recorded for another leaf is not used")
{
    Connection c;
    events_for(c, "expired");
    const Decision d = acl_ehlo(*site(), c, ehlo("EHLO mx.a.test"), answers(ptr_answer({"mx.a.test"})));
    CHECK(d.reply.reason == Reason::untrusted_issuer);
}

TEST_CASE("Exim: EHLO name not in the certificate is 504 5.7.1 ehlo_not_in_cert")
{
    Connection c;
    events_for(c, "client");
    const Decision d = acl_ehlo(*site(), c, ehlo("EHLO other.a.test"), answers(ptr_answer({"other.a.test"})));
    CHECK(acl_text(d.reply) == "504 5.7.1 Authentication failed: EHLO name not in client certificate");
    CHECK_FALSE(c.facts.authenticated);
}

TEST_CASE("Exim: no client certificate is 504 5.7.1 no_client_cert")
{
    Connection c;
    EhloInput in = ehlo("EHLO mx.a.test");
    in.leaf_der.clear();
    const Decision d = acl_ehlo(*site(), c, in, answers(ptr_answer({"mx.a.test"})));
    CHECK(acl_text(d.reply) == acl_text(reply_for(Reason::no_client_cert)));
}

TEST_CASE("Exim: PTR mismatch is 504 5.7.1 and a temporary DNS failure 451 4.4.3, asked again next time")
{
    Connection c;
    events_for(c, "client");
    Decision d = acl_ehlo(*site(), c, ehlo("EHLO mx.a.test"), answers(ptr_answer({"other.a.test"})));
    CHECK(d.reply.reason == Reason::ptr_mismatch);
    int calls = 0;
    Connection t;
    events_for(t, "client");
    d = acl_ehlo(*site(), t, ehlo("EHLO mx.a.test"), answers(ptr_answer({}, DnsStatus::temporary), &calls));
    CHECK(acl_text(d.reply).rfind("451 4.4.3 ", 0) == 0);
    d = acl_ehlo(*site(), t, ehlo("EHLO mx.a.test"), answers(ptr_answer({"mx.a.test"}), &calls));
    CHECK(d.reply.code == 250);
    CHECK(calls == 2);
}

TEST_CASE("Exim: a private listener skips the PTR rule for a private-CA certificate")
{
    Connection c;
    events_for(c, "private");
    int calls = 0;
    const Decision d = acl_ehlo(*site(), c, ehlo("EHLO host1.customers.isp.test", "private", 2687),
                                   answers(ptr_answer({}), &calls));
    CHECK(d.reply.code == 250);
    CHECK(calls == 0);
    CHECK(c.facts.listener == ListenerKind::private_network);
}

TEST_CASE("Exim: MAIL before a successful EHLO is 503 5.5.1 ehlo_first")
{
    Connection c;
    CHECK(acl_mail(*site(), c, "MAIL FROM:<a@a.test>").reply.reason == Reason::ehlo_first);
    Connection ok = authenticated();
    CHECK(acl_text(acl_mail(*site(), ok, "MAIL FROM:<a@a.test> SIZE=100").reply).rfind("250 2.1.0", 0) == 0);
}

TEST_CASE("Exim: the public listener never relays (550 5.7.1 relay_denied)")
{
    Connection c = authenticated();
    CHECK(acl_text(acl_rcpt(*site(), c, "RCPT TO:<carl@c.test>").reply) == acl_text(reply_for(Reason::relay_denied)));
    CHECK(acl_rcpt(*site(), c, "RCPT TO:<bob@B.TEST>").reply.code == 250);
}

TEST_CASE("Exim: an unknown local recipient is 550 5.1.1 unknown_recipient (delivery.recipients)")
{
    Connection c = authenticated();
    const Decision d = acl_rcpt(*site(), c, "RCPT TO:<ghost@b.test>");
    CHECK(acl_text(d.reply) == acl_text(reply_for(Reason::unknown_recipient)));
    CHECK(acl_text(d.reply).rfind("550 5.1.1 ", 0) == 0);
}

TEST_CASE("Exim: the AMTP-MPC carrier is judged at DATA as the parameter would be")
{
    Connection c = authenticated();
    CHECK(acl_data(*site(), c, data("Subject: x\n")).reply.reason == Reason::mpc_missing);
    CHECK(acl_data(*site(), c, data("AMTP-MPC: per\n")).reply.reason == Reason::mpc_malformed);
    CHECK(acl_data(*site(), c, data("AMTP-MPC: spam/individual\n")).reply.reason == Reason::mpc_undefined);
    CHECK(acl_data(*site(), c, data("AMTP-MPC: per/individual\nAMTP-MPC: per/individual\n")).reply.reason ==
          Reason::mpc_duplicate);
    CHECK(acl_data(*site(), c, data("AMTP-MPC: com/optout\n")).reply.reason == Reason::mpc_denied);
    CHECK(acl_data(*site(), c, data("AMTP-MPC: com/optin\n", {"bob@b.test", "nocom@b.test"})).reply.reason ==
          Reason::mpc_denied);
    CHECK(acl_data(*site(), c, data("AMTP-MPC: per/individual\nMPC: com/optout\n")).reply.reason ==
          Reason::mpc_header_present);
}

TEST_CASE("Exim: an accepted message gets Received with AMTP, Authentication-Results and MPC")
{
    Connection c = authenticated();
    const Decision d = acl_data(*site(), c, data("AMTP-MPC: per/individual\nSubject: x\n"));
    CHECK(acl_text(d.reply).rfind("250 2.0.0", 0) == 0);
    REQUIRE(c.mpc);
    CHECK(c.mpc->str() == "per/individual");
    CHECK(c.received.rfind("Received: from mx.a.test (mx.a.test [127.0.0.2])", 0) == 0);
    CHECK(c.received.find("with AMTP") != std::string::npos);
    CHECK(c.received.find('\r') == std::string::npos);
    CHECK(c.authentication_results.find("x-amtp=pass") != std::string::npos);
    CHECK(c.mpc_field == "MPC: per/individual\n");
}

TEST_CASE("Exim: forged Authentication-Results fields make the DATA ACL remove every such field")
{
    Connection c = authenticated();
    acl_data(*site(), c, data("AMTP-MPC: per/individual\nAuthentication-Results: mx.a.test; spf=pass\n"));
    CHECK(trace_field(c, "remove") == "AMTP-MPC");
    const Decision d = acl_data(
        *site(), c, data("AMTP-MPC: per/individual\nAuthentication-Results:\n\tmx.b.test; x-amtp=pass\nSubject: x\n"));
    CHECK(acl_text(d.reply).rfind("250 2.0.0", 0) == 0);
    CHECK(trace_field(c, "remove") == "AMTP-MPC : Authentication-Results");
    CHECK(d.log.find("forged_results=1") != std::string::npos);
}

TEST_CASE("Exim: only local parts safe as one Maildir directory are routed")
{
    CHECK(safe_local_part("bob") == std::optional<std::string>("bob"));
    CHECK_FALSE(safe_local_part("../etc"));
    CHECK_FALSE(safe_local_part(".hidden"));
    CHECK_FALSE(safe_local_part("a/b"));
    CHECK_FALSE(safe_local_part(""));
}

TEST_CASE("Exim: $recipients splits into addresses")
{
    CHECK(split_recipients("a@b.test, c@d.test") == std::vector<std::string>{"a@b.test", "c@d.test"});
    CHECK(split_recipients("").empty());
}

TEST_CASE("Exim client: the route is the SRV targets' addresses, no MX or A fallback")
{
    SrvResult srv;
    srv.status = DnsStatus::answer;
    srv.targets = {SrvRecord{10, 0, 2626, "mx.b.test"}};
    DnsResult a;
    a.status = DnsStatus::answer;
    a.records = {"127.0.0.3", "::1"};
    const Route r = route_domain(
        "b.test", [&](const std::string& d) { CHECK(d == "b.test"); return srv; },
        [&](const std::string& n) { CHECK(n == "mx.b.test"); return a; });
    CHECK(r.status == DnsStatus::answer);
    CHECK(r.hosts == "127.0.0.3::2626"); // IPv6 targets are not routed yet
    CHECK(hop_target(r.hops, *IpAddress::parse("127.0.0.3"), 2626) == "mx.b.test");
    CHECK(hop_target(r.hops, *IpAddress::parse("127.0.0.3"), 25).empty());

    SrvResult none;
    none.status = DnsStatus::negative;
    int address_lookups = 0;
    const Route missing = route_domain(
        "c.test", [&](const std::string&) { return none; },
        [&](const std::string&) { ++address_lookups; return a; });
    CHECK(missing.status == DnsStatus::negative);
    CHECK(missing.hosts.empty());
    CHECK(address_lookups == 0);

    DnsResult temporary;
    temporary.status = DnsStatus::temporary;
    const Route later = route_domain(
        "b.test", [&](const std::string&) { return srv; }, [&](const std::string&) { return temporary; });
    CHECK(later.status == DnsStatus::temporary);
}

TEST_CASE("Exim client: the server certificate must name the SRV target")
{
    const auto chain = der_chain(pki_file("server-b.chain.pem"));
    CHECK(check_server(*site(), chain, "mx.b.test", now).ok());
    CHECK(check_server(*site(), chain, "mx.c.test", now).reason == Reason::server_name_mismatch);
    CHECK(check_server(*site(), der_chain(pki_file("other-ca.chain.pem")), "mx.a.test", now).reason ==
          Reason::server_cert_invalid);
}

TEST_CASE("Exim client: the outgoing MPC is never rewritten, bounces use net/autoresponse")
{
    CHECK(outgoing_mpc(*site(), " com/optin ", "shop@b.test") == "com/optin");
    CHECK(outgoing_mpc(*site(), "com/bulk", "shop@b.test").empty());
    CHECK(outgoing_mpc(*site(), "", "") == "net/autoresponse");
    CHECK(outgoing_mpc(*site(), "", "nobody@b.test").empty());
}

TEST_CASE("Exim: a base64 certificate with more than two '=' reads as none, not as an error")
{
    // Found by fuzz_exim_args: "====" decoded to 3 bytes less 4 of padding, and the
    // length wrapped (std::length_error, so amtp_cert refused the handshake with 451).
    CHECK(base64_der("====").empty());
    CHECK(base64_der("A===").empty());
    CHECK(base64_der("AA==") == std::string(1, '\0'));
    CHECK(base64_der("AAA=") == std::string(2, '\0'));
    CHECK(base64_der("QUJD\nREVG") == "ABCDEF");
}

TEST_CASE("Exim: MAIL's parameters are judged by the core, SIZE before anything else")
{
    Connection c = authenticated();
    const Decision big = acl_mail(*site(), c, "MAIL FROM:<a@a.test> SIZE=99999999999");
    CHECK(acl_text(big.reply) == acl_text(reply_for(Reason::message_too_big)));
    CHECK(big.log.find("reason=message_too_big") != std::string::npos);
    CHECK(acl_mail(*site(), c, "MAIL FROM:<a@a.test> SIZE=12x").reply.reason == Reason::syntax_error);
    CHECK(acl_mail(*site(), c, "MAIL FROM:<a@a.test> BODY=8BITMIME").reply.code == 250);
}
