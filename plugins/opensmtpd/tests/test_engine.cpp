// The filter's decisions end to end, on the protocol lines smtpd 6.8 sends (recorded
// on this machine), for a private-listener session (no DNS needed).
#include "filter/engine.hpp"
#include "output_lines.hpp"

#include "amtp/policy.hpp"

#include <catch2/catch.hpp>

#include <random>

using namespace amtp;
using namespace amtp::opensmtpd;

namespace {

struct Harness {
    Resolver resolver{ResolverOptions{"127.0.0.1@9", "", {"test."}, std::chrono::milliseconds(200)}};
    std::string out;
    Engine engine{{}, [this](const std::string& s) { out += s; }};

    Harness()
    {
        Settings s;
        s.hostname = "mx.b.test";
        s.delivery.local_domains = {"b.test"};
        s.delivery.recipients = "any"; // no Maildir here; the recipient check has its own tests
        auto policy = std::make_shared<const Policy>(Policy::load_string(
            "<amtp-policy><advertise><deny mpc=\"*/optout\"/></advertise></amtp-policy>", "p.xml"));
        EngineConfig c;
        auto pub = make_server_config(s, policy, ListenerKind::public_network);
        auto priv = make_server_config(s, policy, ListenerKind::private_network);
        pub.accept_header_carrier = priv.accept_header_carrier = true;
        c.public_config = std::make_shared<const ServerConfig>(pub);
        c.private_config = std::make_shared<const ServerConfig>(priv);
        c.registration_wait = std::chrono::milliseconds(0);
        engine.configure(c, resolver);
    }
    void registered(const std::string& address, unsigned port, Reason refusal = Reason::none)
    {
        GateMessage m;
        m.registration = true;
        m.record.key = {*IpAddress::parse(address), static_cast<std::uint16_t>(port)};
        m.record.listener = ListenerKind::private_network;
        m.record.token = token_for(port);
        if (refusal == Reason::none) {
            Identity i;
            i.names = {"host1.isp.test"};
            i.subject = "CN=host1.isp.test";
            i.trust = TrustKind::private_ca;
            m.record.tls.identity.identity = i;
        } else {
            m.record.tls.identity.reason = refusal;
        }
        engine.on_gate(m);
    }
    static std::string token_for(unsigned port) { return "0123456789abcdef0123456789abcd" + std::to_string(port % 100); }
    // The gate's first line on its own connection: it claims the registration.
    std::string shows_token(const std::string& sid, unsigned port)
    {
        return line("report|0.6|1|smtp-in|protocol-client|" + sid + "|X-AMTP-GATE " + token_for(port));
    }
    std::string line(const std::string& l)
    {
        out.clear();
        engine.on_smtpd_line(l);
        return out;
    }
    void connect(const std::string& sid, const std::string& src)
    {
        line("report|0.6|1|smtp-in|link-connect|" + sid + "|<unknown>|fail|" + src + "|127.0.0.1:10026");
    }
    // A session the gate registered from 127.0.0.8:PORT, through connect and EHLO.
    void after_ehlo(const std::string& sid, unsigned port)
    {
        registered("127.0.0.8", port);
        connect(sid, "127.0.0.8:" + std::to_string(port));
        line("filter|0.6|1|smtp-in|connect|" + sid + "|aa|x|127.0.0.8");
        shows_token(sid, port);
        command(sid, "EHLO host1.isp.test", "ehlo", "host1.isp.test");
    }
    std::string command(const std::string& sid, const std::string& cmd, const std::string& phase, const std::string& param)
    {
        line("report|0.6|1|smtp-in|protocol-client|" + sid + "|" + cmd);
        return line("filter|0.6|1|smtp-in|" + phase + "|" + sid + "|aa|" + param);
    }
};

} // namespace

TEST_CASE("config|ready is answered with the registrations and register|ready")
{
    Harness h;
    const std::string out = h.line("config|ready");
    CHECK(out.find("register|filter|smtp-in|ehlo\n") != std::string::npos);
    CHECK(out.find("register|report|smtp-in|protocol-client\n") != std::string::npos);
    CHECK(out.size() > 15);
    CHECK(out.substr(out.size() - 15) == "register|ready\n");
}

TEST_CASE("A session the gate did not register is refused at connect")
{
    Harness h;
    h.connect("01", "127.0.0.66:4000");
    CHECK(h.line("filter|0.6|1|smtp-in|connect|01|aa|x|127.0.0.66").empty()); // waits for the gate
    h.out.clear();
    h.engine.tick(Engine::Clock::now() + std::chrono::seconds(1));
    CHECK(h.out == "filter-result|01|aa|disconnect|554 5.7.1 Connection refused: it did not come through the AMTP gate\n");
    // and anything later in that session too
    CHECK(h.line("filter|0.6|1|smtp-in|ehlo|01|bb|x").rfind("filter-result|01|bb|disconnect|554", 0) == 0);
}

TEST_CASE("A registration arriving after link-connect releases the waiting connect phase")
{
    Harness h;
    h.connect("02", "127.0.0.8:4001");
    CHECK(h.line("filter|0.6|1|smtp-in|connect|02|aa|x|127.0.0.8").empty());
    h.out.clear();
    h.registered("127.0.0.8", 4001);
    CHECK(h.out == "filter-result|02|aa|proceed\n");
}

TEST_CASE("HELO is refused with 504 5.5.1; EHLO binds the certificate name")
{
    Harness h;
    h.registered("127.0.0.8", 1);
    h.connect("03", "127.0.0.8:1");
    CHECK(h.line("filter|0.6|1|smtp-in|connect|03|aa|x|127.0.0.8") == "filter-result|03|aa|proceed\n");
    h.shows_token("03", 1);
    CHECK(h.command("03", "HELO host1.isp.test", "helo", "host1.isp.test").rfind("filter-result|03|aa|reject|504 5.5.1 ", 0) == 0);
    CHECK(h.command("03", "EHLO other.isp.test", "ehlo", "other.isp.test") ==
          "filter-result|03|aa|reject|504 5.7.1 Authentication failed: EHLO name not in client certificate\n");
    CHECK(h.command("03", "EHLO host1.isp.test", "ehlo", "host1.isp.test") == "filter-result|03|aa|proceed\n");
}

TEST_CASE("A refused certificate is answered at EHLO with its reason")
{
    Harness h;
    h.registered("127.0.0.8", 2, Reason::cert_expired);
    h.connect("04", "127.0.0.8:2");
    h.line("filter|0.6|1|smtp-in|connect|04|aa|x|127.0.0.8");
    h.shows_token("04", 2);
    CHECK(h.command("04", "EHLO host1.isp.test", "ehlo", "host1.isp.test") ==
          "filter-result|04|aa|reject|504 5.7.1 Authentication failed: certificate expired\n");
}

TEST_CASE("MPC= is checked on MAIL and stripped for smtpd; the message gets trace and MPC fields")
{
    Harness h;
    h.after_ehlo("05", 3);
    CHECK(h.command("05", "MAIL FROM:<a@a.test> MPC=com/optout", "mail-from", "a@a.test") ==
          "filter-result|05|aa|reject|550 5.7.1 MPC policy violation\n");
    CHECK(h.command("05", "MAIL FROM:<a@a.test> BODY=8BITMIME MPC=per/individual", "mail-from", "a@a.test") ==
          "filter-result|05|aa|rewrite|<a@a.test> BODY=8BITMIME\n");
    CHECK(h.command("05", "RCPT TO:<bob@b.test>", "rcpt-to", "bob@b.test") == "filter-result|05|aa|proceed\n");
    h.line("report|0.6|1|smtp-in|protocol-client|05|DATA");
    for (const char* l : {"Received: from host1.isp.test (<unknown> [127.0.0.8])", "\tby mx.b.test (OpenSMTPD) with ESMTP id 1;",
                          "Subject: hi", "X-AMTP-Header-End: forged", "\tcontinued", "", "..dot"})
        CHECK(h.line(std::string("filter|0.6|1|smtp-in|data-line|05|aa|") + l).empty());
    const std::string out = h.line("filter|0.6|1|smtp-in|data-line|05|aa|.");
    CHECK(out.rfind("filter-dataline|05|aa|Received: from host1.isp.test ", 0) == 0);
    CHECK(out.find("Authentication-Results: mx.b.test; x-amtp=pass") != std::string::npos);
    CHECK(out.find("|\tby mx.b.test (OpenSMTPD) with ESMTP id 1;\nfilter-dataline|05|aa|MPC: per/individual\n"
                   "filter-dataline|05|aa|Subject: hi\nfilter-dataline|05|aa|X-AMTP-Header-End: filter\n"
                   "filter-dataline|05|aa|\nfilter-dataline|05|aa|..dot\n"
                   "filter-dataline|05|aa|.\n") != std::string::npos);
    CHECK(h.line("filter|0.6|1|smtp-in|commit|05|aa|") == "filter-result|05|aa|proceed\n");
}

TEST_CASE("smtpd 6.8's report of the end-of-data dot is not an unknown command to the shadow")
{
    Harness h;
    h.after_ehlo("0d", 9);
    // More messages in one session than limits.max-errors (10): were each dot counted
    // as an unknown command, the shadow would close the session before the last MAIL.
    for (int i = 0; i < 12; ++i) {
        INFO("message " << i);
        REQUIRE(h.command("0d", "MAIL FROM:<a@a.test> MPC=per/individual", "mail-from", "a@a.test") ==
                "filter-result|0d|aa|rewrite|<a@a.test>\n");
        REQUIRE(h.command("0d", "RCPT TO:<bob@b.test>", "rcpt-to", "bob@b.test") == "filter-result|0d|aa|proceed\n");
        h.line("report|0.6|1|smtp-in|protocol-client|0d|DATA");
        h.line("filter|0.6|1|smtp-in|data-line|0d|aa|Subject: hi");
        h.line("filter|0.6|1|smtp-in|data-line|0d|aa|");
        REQUIRE(h.line("filter|0.6|1|smtp-in|data-line|0d|aa|.").find("filter-dataline|0d|aa|.\n") != std::string::npos);
        REQUIRE(h.line("filter|0.6|1|smtp-in|commit|0d|aa|") == "filter-result|0d|aa|proceed\n");
        h.line("report|0.6|1|smtp-in|protocol-client|0d|.");
    }
    CHECK(h.command("0d", "MAIL FROM:<a@a.test> MPC=per/individual", "mail-from", "a@a.test") ==
          "filter-result|0d|aa|rewrite|<a@a.test>\n");
}

TEST_CASE("A message that already has an MPC field is refused at commit")
{
    Harness h;
    h.after_ehlo("06", 4);
    h.command("06", "MAIL FROM:<a@a.test> MPC=per/individual", "mail-from", "a@a.test");
    h.command("06", "RCPT TO:<bob@b.test>", "rcpt-to", "bob@b.test");
    h.line("report|0.6|1|smtp-in|protocol-client|06|DATA");
    h.line("filter|0.6|1|smtp-in|data-line|06|aa|MPC: com/optout");
    h.line("filter|0.6|1|smtp-in|data-line|06|aa|");
    CHECK(h.line("filter|0.6|1|smtp-in|data-line|06|aa|.") == "filter-dataline|06|aa|.\n");
    CHECK(h.line("filter|0.6|1|smtp-in|commit|06|aa|").rfind("filter-result|06|aa|reject|550 5.7.1 ", 0) == 0);
}

TEST_CASE("Random input never produces a malformed output line")
{
    Harness h;
    h.registered("127.0.0.8", 5);
    std::mt19937 rng(7);
    const std::vector<std::string> stems = {
        "filter|0.6|1|smtp-in|connect|0a|bb|", "filter|0.6|1|smtp-in|ehlo|0a|bb|", "filter|0.7|1|smtp-in|data-line|0a|bb|",
        "filter|0.6|1|smtp-in|mail-from|0a|bb|", "filter|0.6|1|smtp-in|commit|0a|bb|",
        "report|0.6|1|smtp-in|protocol-client|0a|", "report|0.6|1|smtp-in|link-connect|0a|x|pass|127.0.0.8:5|",
        "report|0.6|1|smtp-in|link-disconnect|0a", "filter|0.6|1|smtp-in|rcpt-to|0a|bb|", "config|ready", "",
    };
    const std::string noise = std::string("|.\r\0<>:@ =MAILFROMRCPTODATAEHLOMPC/per/individual", 49);
    for (int i = 0; i < 5000; ++i) {
        std::string l = stems[rng() % stems.size()];
        const int n = static_cast<int>(rng() % 40);
        for (int k = 0; k < n; ++k)
            l += noise[rng() % noise.size()];
        const std::string out = h.line(l);
        std::size_t start = 0;
        while (start < out.size()) {
            const auto nl = out.find('\n', start);
            REQUIRE(nl != std::string::npos);
            const std::string one = out.substr(start, nl - start);
            INFO(l);
            INFO(one);
            CHECK(test::well_formed_output_line(one));
            start = nl + 1;
        }
    }
}

TEST_CASE("A DATA smtpd refused does not leave the shadow in DATA (no stalled phase)")
{
    Harness h;
    h.after_ehlo("07", 6);
    h.command("07", "MAIL FROM:<a@a.test> MPC=per/individual", "mail-from", "a@a.test");
    h.command("07", "RCPT TO:<carl@c.test>", "rcpt-to", "carl@c.test"); // private: relay allowed here, smtpd refuses
    h.line("report|0.6|1|smtp-in|protocol-client|07|DATA");          // smtpd answers 503 itself
    h.line("report|0.6|1|smtp-in|protocol-client|07|RSET");
    CHECK(h.command("07", "MAIL FROM:<a@a.test> MPC=per/individual", "mail-from", "a@a.test") ==
          "filter-result|07|aa|rewrite|<a@a.test>\n");
}

TEST_CASE("No identity hijack through smtpd's PROXY listener: only the session with the gate's token gets it")
{
    Harness h;
    h.registered("127.0.0.8", 9);
    // A local process names the client's address and port in its own PROXY header
    // before the gate connects: it passes the connect phase (the key is registered)...
    h.connect("0b", "127.0.0.8:9");
    CHECK(h.line("filter|0.6|1|smtp-in|connect|0b|aa|x|127.0.0.8") == "filter-result|0b|aa|proceed\n");
    // ... but without the token it gets nothing, guessing does not help,
    h.line("report|0.6|1|smtp-in|protocol-client|0b|X-AMTP-GATE 00000000000000000000000000000000");
    CHECK(h.command("0b", "EHLO host1.isp.test", "ehlo", "host1.isp.test").rfind("filter-result|0b|aa|disconnect|554 5.7.1 ", 0) == 0);
    CHECK(h.command("0b", "MAIL FROM:<a@a.test> MPC=per/individual", "mail-from", "a@a.test")
              .rfind("filter-result|0b|aa|disconnect|554 5.7.1 ", 0) == 0);
    // and the gate's own session is still served.
    h.connect("0c", "127.0.0.8:9");
    CHECK(h.line("filter|0.6|1|smtp-in|connect|0c|aa|x|127.0.0.8") == "filter-result|0c|aa|proceed\n");
    h.shows_token("0c", 9);
    CHECK(h.command("0c", "EHLO host1.isp.test", "ehlo", "host1.isp.test") == "filter-result|0c|aa|proceed\n");
    // Once claimed, the token is spent: a later session showing it gets nothing.
    h.connect("0d", "127.0.0.8:9");
    CHECK(h.line("filter|0.6|1|smtp-in|connect|0d|aa|x|127.0.0.8").empty()); // not registered any more: waits
    h.shows_token("0d", 9);
    CHECK(h.command("0d", "EHLO host1.isp.test", "ehlo", "host1.isp.test").rfind("filter-result|0d|aa|disconnect|554 5.7.1 ", 0) == 0);
}

TEST_CASE("The gate's token line is never fed to the shadow session")
{
    Harness h;
    h.registered("127.0.0.8", 10);
    h.connect("0e", "127.0.0.8:10");
    h.line("filter|0.6|1|smtp-in|connect|0e|aa|x|127.0.0.8");
    h.shows_token("0e", 10);
    h.shows_token("0e", 10); // a second one (the client cannot send it: the gate sends it first) changes nothing
    CHECK(h.command("0e", "EHLO host1.isp.test", "ehlo", "host1.isp.test") == "filter-result|0e|aa|proceed\n");
}
