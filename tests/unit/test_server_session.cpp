// The server session's rules, each test named after the rule it proves. The session
// is sans-I/O: the tests feed it the TLS result, command bytes and DNS answers, and
// read its replies. Real TLS and DNS are covered by the tls_identity and resolver
// tests and by the integration suite through the front-ends.
#include "amtp/server_session.hpp"

#include <catch2/catch.hpp>

#include <memory>

using namespace amtp;

namespace {

Identity make_identity(std::vector<std::string> names, TrustKind trust = TrustKind::public_ca)
{
    Identity id;
    id.names = std::move(names);
    id.subject = "CN=" + id.names.front();
    id.issuer = "CN=Test CA";
    id.serial = "0A";
    id.sha256 = std::string(64, 'a');
    id.trust = trust;
    return id;
}

TlsInfo tls_with(std::vector<std::string> names, TrustKind trust = TrustKind::public_ca)
{
    TlsInfo t;
    t.identity.identity = make_identity(std::move(names), trust);
    t.version = "TLSv1.3";
    t.cipher = "TLS_AES_256_GCM_SHA384";
    return t;
}

TlsInfo tls_refused(Reason reason)
{
    TlsInfo t;
    t.identity.reason = reason;
    t.version = "TLSv1.3";
    return t;
}

ReverseDnsResult ptr(std::vector<std::string> names)
{
    ReverseDnsResult r;
    r.status = names.empty() ? DnsStatus::negative : DnsStatus::answer;
    r.names = std::move(names);
    return r;
}

ReverseDnsResult ptr_temporary()
{
    ReverseDnsResult r;
    r.status = DnsStatus::temporary;
    r.error = "SERVFAIL";
    return r;
}

DeclarationList rules(std::initializer_list<Declaration> items)
{
    return DeclarationList(std::vector<Declaration>(items));
}

std::shared_ptr<Policy> site_policy()
{
    auto p = std::make_shared<Policy>();
    p->advertise = rules({{false, {"*", "optout"}}});
    p->domains["b.test"] = rules({{false, {"com", "*"}}, {true, {"com", "confirmed"}}});
    p->recipients["carol@b.test"] = rules({{true, {"com", "*"}}});
    p->recipients["dave@b.test"] = rules({{false, {"*", "*"}}});
    return p;
}

struct Harness {
    std::shared_ptr<ServerConfig> config = std::make_shared<ServerConfig>();
    std::unique_ptr<ServerSession> session;
    std::vector<std::string> log;

    explicit Harness(ListenerKind kind = ListenerKind::public_network)
    {
        config->hostname = "mx.b.test";
        config->listener = kind;
        config->local_domains = {"b.test"};
        config->policy = site_policy();
        config->limits.max_message_size = 10000;
        config->limits.max_recipients = 3;
        config->limits.max_errors = 5;
    }

    // Connects with implicit TLS and the given result; returns the greeting.
    std::string connect(std::optional<TlsInfo> tls = tls_with({"mx.a.test"}))
    {
        session = std::make_unique<ServerSession>(config, *IpAddress::parse("127.0.0.2"), "S1",
                                                  [this](const std::string& l) { log.push_back(l); });
        session->start(std::move(tls));
        return session->take_output();
    }

    std::string send(std::string_view bytes)
    {
        session->receive(bytes);
        return session->take_output();
    }

    std::string dns(ReverseDnsResult r)
    {
        session->reverse_dns_done(std::move(r));
        return session->take_output();
    }

    // Greeting, EHLO mx.a.test with a matching PTR; returns the EHLO reply.
    std::string authenticate()
    {
        connect();
        if (config->listener == ListenerKind::public_network)
            REQUIRE(session->take_lookup());
        std::string out = send("EHLO mx.a.test\r\n");
        if (config->listener == ListenerKind::public_network)
            out += dns(ptr({"mx.a.test"}));
        REQUIRE(session->authenticated());
        return out;
    }

    bool logged(std::string_view needle) const
    {
        for (const auto& l : log)
            if (l.find(needle) != std::string::npos)
                return true;
        return false;
    }
};

bool starts_with(const std::string& s, std::string_view prefix)
{
    return s.compare(0, prefix.size(), prefix) == 0;
}

} // namespace

TEST_CASE("The greeting is 220 and a public listener asks for the peer's PTR at once")
{
    Harness h;
    CHECK(h.connect() == "220 mx.b.test AMTP service ready\r\n");
    const auto lookup = h.session->take_lookup();
    REQUIRE(lookup);
    CHECK(lookup->str() == "127.0.0.2");
    CHECK_FALSE(h.session->take_lookup());
}

TEST_CASE("HELO is refused with 504 5.5.1")
{
    Harness h;
    h.connect();
    CHECK(h.send("HELO mx.a.test\r\n") == "504 5.5.1 HELO is not supported by AMTP; use EHLO\r\n");
    CHECK_FALSE(h.session->authenticated());
}

TEST_CASE("EHLO naming the certificate and the PTR authenticates and lists the MPC declarations")
{
    Harness h;
    const std::string out = h.authenticate();
    CHECK(out == "250-mx.b.test greets mx.a.test\r\n"
                 "250-MPC DENY=*/optout\r\n"
                 "250-PIPELINING\r\n"
                 "250-8BITMIME\r\n"
                 "250-SIZE 10000\r\n"
                 "250 ENHANCEDSTATUSCODES\r\n");
    CHECK(h.session->ehlo_name() == "mx.a.test");
    CHECK(h.logged("event=ehlo"));
    CHECK(h.logged("result=pass"));
}

TEST_CASE("No MPC line is sent when the site declares nothing (ALLOW */* implied)")
{
    Harness h;
    h.config->policy = nullptr;
    const std::string out = h.authenticate();
    CHECK(out.find("MPC") == std::string::npos);
}

TEST_CASE("EHLO compares case-insensitively and ignores a trailing dot")
{
    Harness h;
    h.connect();
    REQUIRE(h.session->take_lookup());
    h.dns(ptr({"mx.a.test"}));
    CHECK(starts_with(h.send("EHLO MX.A.Test.\r\n"), "250-"));
}

TEST_CASE("EHLO without a fully qualified domain is refused with 501 5.5.2")
{
    for (const char* arg : {"", "localhost", "[127.0.0.2]", "mx..a.test", "mx_a.test", "-mx.a.test"}) {
        Harness h;
        h.connect();
        INFO(arg);
        CHECK(starts_with(h.send(std::string("EHLO ") + arg + "\r\n"), "501 5.5.2 "));
    }
}

TEST_CASE("EHLO without a client certificate is refused with 504 5.7.1 no_client_cert")
{
    Harness h;
    h.connect(tls_refused(Reason::no_client_cert));
    const std::string out = h.send("EHLO mx.a.test\r\n");
    CHECK(out == "504 5.7.1 Authentication failed: no client certificate\r\n");
    CHECK(h.logged("reason=no_client_cert"));
}

TEST_CASE("Every certificate refusal reaches EHLO as 504 5.7.1 with its own text")
{
    for (Reason r : {Reason::untrusted_issuer, Reason::cert_expired, Reason::cert_not_yet_valid,
                     Reason::cert_revoked, Reason::cert_purpose, Reason::pin_wrong_network}) {
        Harness h;
        h.connect(tls_refused(r));
        INFO(reason_name(r));
        CHECK(h.send("EHLO mx.a.test\r\n") == reply_for(r).wire());
        CHECK(starts_with(reply_for(r).wire(), "504 5.7.1 Authentication failed: "));
        CHECK(h.logged(std::string("reason=") + reason_name(r)));
    }
}

TEST_CASE("A stale CRL is a local fault: EHLO is refused with 451 4.7.5 and a log line naming the fault")
{
    for (Reason r : {Reason::crl_stale, Reason::crl_missing}) {
        Harness h;
        h.connect(tls_refused(r));
        INFO(reason_name(r));
        const std::string out = h.send("EHLO mx.a.test\r\n");
        CHECK(out == reply_for(r).wire());
        CHECK(starts_with(out, "451 4.7.5 Authentication temporarily unavailable: "));
        CHECK(h.logged(std::string("reason=") + reason_name(r)));
        CHECK(h.logged("fault=local"));
    }
}

TEST_CASE("An EHLO name that is not in the certificate is refused with 504 5.7.1 ehlo_not_in_cert")
{
    Harness h;
    h.connect();
    h.dns(ptr({"mx.a.test"}));
    CHECK(h.send("EHLO other.a.test\r\n") == "504 5.7.1 Authentication failed: EHLO name not in client certificate\r\n");
    CHECK(h.logged("reason=ehlo_not_in_cert"));
}

TEST_CASE("A wildcard certificate name never authenticates a client")
{
    Harness h;
    h.connect(tls_with({"*.a.test"}));
    h.dns(ptr({"mx.a.test"}));
    CHECK(starts_with(h.send("EHLO mx.a.test\r\n"), "504 5.7.1 "));
}

TEST_CASE("A PTR that names another host is refused with 504 5.7.1 ptr_mismatch")
{
    Harness h;
    h.connect();
    h.session->take_lookup();
    CHECK(h.send("EHLO mx.a.test\r\n").empty()); // waits for DNS
    CHECK(h.dns(ptr({"other.a.test"})) == "504 5.7.1 Authentication failed: PTR record does not match EHLO name\r\n");
    CHECK(h.logged("reason=ptr_mismatch"));
}

TEST_CASE("A missing PTR is refused with 504 5.7.1 ptr_missing")
{
    Harness h;
    h.connect();
    h.dns(ptr({}));
    CHECK(h.send("EHLO mx.a.test\r\n") == "504 5.7.1 Authentication failed: no PTR record for client address\r\n");
}

TEST_CASE("A PTR name that does not resolve back is refused with 504 5.7.1 ptr_unconfirmed")
{
    Harness h;
    h.connect();
    ReverseDnsResult r;
    r.status = DnsStatus::answer;
    r.forward_checked = true;
    r.unconfirmed = {"mx.a.test"};
    h.dns(r);
    CHECK(starts_with(h.send("EHLO mx.a.test\r\n"), "504 5.7.1 Authentication failed: PTR name does not"));
}

TEST_CASE("A temporary DNS failure gives 451 4.4.3 and the next EHLO asks again")
{
    Harness h;
    h.connect();
    REQUIRE(h.session->take_lookup());
    h.send("EHLO mx.a.test\r\n");
    CHECK(h.dns(ptr_temporary()) == "451 4.4.3 Temporary DNS failure; try again later\r\n");
    CHECK_FALSE(h.session->authenticated());
    CHECK(h.send("EHLO mx.a.test\r\n").empty());
    REQUIRE(h.session->take_lookup()); // asked again
    CHECK(starts_with(h.dns(ptr({"mx.a.test"})), "250-"));
}

TEST_CASE("A private listener skips the PTR rule but binds EHLO to the certificate")
{
    Harness h(ListenerKind::private_network);
    h.connect(tls_with({"host1.customers.isp.test"}, TrustKind::private_ca));
    CHECK_FALSE(h.session->take_lookup());
    CHECK(starts_with(h.send("EHLO host1.customers.isp.test\r\n"), "250-"));
    CHECK(starts_with(h.send("EHLO host2.customers.isp.test\r\n"), "504 5.7.1 "));
}

TEST_CASE("Mail commands before a successful EHLO get 503 5.5.1")
{
    Harness h;
    h.connect();
    CHECK(starts_with(h.send("MAIL FROM:<a@a.test> MPC=per/individual\r\n"), "503 5.5.1 "));
    CHECK(starts_with(h.send("RCPT TO:<bob@b.test>\r\n"), "503 5.5.1 "));
    CHECK(starts_with(h.send("DATA\r\n"), "503 5.5.1 "));
}

TEST_CASE("MAIL without MPC is refused with 555 5.5.4 mpc_missing")
{
    Harness h;
    h.authenticate();
    CHECK(h.send("MAIL FROM:<alice@a.test>\r\n") == "555 5.5.4 MPC parameter required\r\n");
}

TEST_CASE("A malformed or undefined MPC value is refused with 501 5.5.4")
{
    Harness h;
    h.authenticate();
    CHECK(h.send("MAIL FROM:<alice@a.test> MPC=per\r\n") == "501 5.5.4 Malformed MPC value\r\n");
    CHECK(h.send("MAIL FROM:<alice@a.test> MPC=xyz/individual\r\n") == "501 5.5.4 Undefined MPC role or class\r\n");
    CHECK(h.send("MAIL FROM:<alice@a.test> MPC=mpc/optin\r\n") == "501 5.5.4 Undefined MPC role or class\r\n");
    CHECK(h.send("MAIL FROM:<alice@a.test> MPC\r\n") == "501 5.5.4 Malformed MPC value\r\n");
}

TEST_CASE("More than one MPC parameter is refused with 501 5.5.4")
{
    Harness h;
    h.authenticate();
    CHECK(h.send("MAIL FROM:<alice@a.test> MPC=per/individual MPC=per/individual\r\n") ==
          "501 5.5.4 Exactly one MPC parameter allowed\r\n");
}

TEST_CASE("An MPC the site's declarations deny is refused at MAIL with 550 5.7.1")
{
    Harness h;
    h.authenticate();
    CHECK(h.send("MAIL FROM:<list@a.test> MPC=com/optout\r\n") == "550 5.7.1 MPC policy violation\r\n");
    CHECK(h.logged("reason=mpc_denied"));
    CHECK(starts_with(h.send("MAIL FROM:<list@a.test> MPC=COM/OptIn\r\n"), "250 2.1.0 "));
}

TEST_CASE("mpc/individual is always accepted, whatever the rules say")
{
    Harness h;
    auto p = std::make_shared<Policy>();
    p->advertise = rules({{false, {"*", "*"}}});
    p->recipients["bob@b.test"] = rules({{false, {"*", "*"}}});
    h.config->policy = p;
    h.authenticate();
    CHECK(starts_with(h.send("MAIL FROM:<admin@a.test> MPC=mpc/individual\r\n"), "250 "));
    CHECK(starts_with(h.send("RCPT TO:<bob@b.test>\r\n"), "250 "));
    CHECK(h.send("RSET\r\n") == "250 2.0.0 OK\r\n");
    CHECK(starts_with(h.send("MAIL FROM:<x@a.test> MPC=per/individual\r\n"), "550 5.7.1 "));
}

TEST_CASE("An unknown MAIL parameter is refused with 555 5.5.4")
{
    Harness h;
    h.authenticate();
    CHECK(starts_with(h.send("MAIL FROM:<alice@a.test> MPC=per/individual FOO=bar\r\n"), "555 5.5.4 "));
}

TEST_CASE("A declared SIZE above the limit is refused with 552 5.3.4")
{
    Harness h;
    h.authenticate();
    CHECK(starts_with(h.send("MAIL FROM:<alice@a.test> MPC=per/individual SIZE=10001\r\n"), "552 5.3.4 "));
    CHECK(starts_with(h.send("MAIL FROM:<alice@a.test> MPC=per/individual SIZE=10000 BODY=8BITMIME\r\n"), "250 "));
}

TEST_CASE("Bad sender and recipient addresses get 501 5.1.7 and 501 5.1.3")
{
    Harness h;
    h.authenticate();
    CHECK(starts_with(h.send("MAIL FROM:<no-at-sign> MPC=per/individual\r\n"), "501 5.1.7 "));
    CHECK(starts_with(h.send("MAIL FROM:<> MPC=net/autoresponse\r\n"), "250 ")); // bounces
    CHECK(starts_with(h.send("RCPT TO:<bob@>\r\n"), "501 5.1.3 "));
    CHECK(starts_with(h.send("RCPT TO:bob@b.test\r\n"), "501 5.5.2 "));
}

TEST_CASE("A public listener never relays to a non-local domain: 550 5.7.1")
{
    Harness h;
    h.authenticate();
    h.send("MAIL FROM:<alice@a.test> MPC=per/individual\r\n");
    CHECK(h.send("RCPT TO:<carl@c.test>\r\n") == "550 5.7.1 Relaying denied: recipient domain is not local\r\n");
    CHECK(h.logged("reason=relay_denied"));
}

TEST_CASE("A private listener accepts non-local recipients for onward delivery")
{
    Harness h(ListenerKind::private_network);
    h.connect(tls_with({"mx.a.test"}, TrustKind::private_ca));
    h.send("EHLO mx.a.test\r\n");
    h.send("MAIL FROM:<alice@b.test> MPC=per/individual\r\n");
    CHECK(starts_with(h.send("RCPT TO:<carl@c.test>\r\n"), "250 2.1.5 "));
}

TEST_CASE("Per-domain rules are checked at RCPT with 550 5.7.1, and a recipient's own rules win")
{
    Harness h;
    h.authenticate();
    h.send("MAIL FROM:<shop@a.test> MPC=com/optin\r\n");
    CHECK(h.send("RCPT TO:<bob@b.test>\r\n") == "550 5.7.1 MPC policy violation\r\n"); // domain: DENY com/*
    CHECK(starts_with(h.send("RCPT TO:<carol@b.test>\r\n"), "250 "));               // recipient: ALLOW com/*
    h.send("RSET\r\n");
    h.send("MAIL FROM:<shop@a.test> MPC=com/confirmed\r\n");
    CHECK(starts_with(h.send("RCPT TO:<bob@b.test>\r\n"), "250 ")); // domain: last match ALLOW com/confirmed
    CHECK(starts_with(h.send("RCPT TO:<dave@b.test>\r\n"), "550 5.7.1 "));
}

TEST_CASE("Too many recipients get 452 4.5.3")
{
    Harness h;
    h.authenticate();
    h.send("MAIL FROM:<alice@a.test> MPC=per/individual\r\n");
    for (int i = 0; i < 3; ++i)
        CHECK(starts_with(h.send("RCPT TO:<u" + std::to_string(i) + "@b.test>\r\n"), "250 "));
    CHECK(h.send("RCPT TO:<u9@b.test>\r\n") == "452 4.5.3 Too many recipients\r\n");
}

TEST_CASE("DATA without recipients gets 503 5.5.1")
{
    Harness h;
    h.authenticate();
    CHECK(starts_with(h.send("DATA\r\n"), "503 5.5.1 "));
    h.send("MAIL FROM:<alice@a.test> MPC=per/individual\r\n");
    CHECK(h.send("DATA\r\n") == "503 5.5.1 No valid recipients\r\n");
}

TEST_CASE("A message is handed over with trace fields and acknowledged only after storage")
{
    Harness h;
    h.authenticate();
    const std::string out = h.send("MAIL FROM:<alice@a.test> MPC=per/individual\r\n"
                                   "RCPT TO:<bob@b.test>\r\n"
                                   "DATA\r\n"
                                   "Subject: hi\r\n"
                                   "\r\n"
                                   "..leading dot\r\n"
                                   "body\r\n"
                                   ".\r\n");
    CHECK(out == "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
    CHECK(h.session->busy());
    auto d = h.session->take_delivery();
    REQUIRE(d);
    CHECK(d->message == "Subject: hi\r\n\r\n.leading dot\r\nbody\r\n");
    CHECK(d->envelope.sender == "alice@a.test");
    CHECK(d->envelope.recipients == std::vector<std::string>{"bob@b.test"});
    CHECK(d->envelope.mpc.str() == "per/individual");
    CHECK(d->trace.find("Received: from mx.a.test") == 0);
    CHECK(d->trace.find("with AMTP") != std::string::npos);
    CHECK(d->trace.find("Authentication-Results: mx.b.test") != std::string::npos);
    CHECK(h.session->take_output().empty()); // no 250 before storage
    h.session->delivery_done(Reason::none);
    CHECK(starts_with(h.session->take_output(), "250 2.0.0 Message accepted"));
    CHECK(h.session->messages_accepted() == 1);
}

TEST_CASE("Forged Authentication-Results fields are removed from the delivered message, ours added")
{
    Harness h;
    h.authenticate();
    h.send("MAIL FROM:<alice@a.test> MPC=per/individual\r\nRCPT TO:<bob@b.test>\r\nDATA\r\n"
           "Authentication-Results: mx.b.test; x-amtp=pass policy.mpc=mpc/individual\r\n"
           "Authentication-Results: mx.a.test; spf=pass\r\n"
           "Authentication-Results:\r\n\tmx.b.test; x-amtp=pass\r\n"
           "Authentication-Results: (folded\r\n\tcomment) mx.c.test; dkim=pass\r\n"
           "Subject: hi\r\n\r\nAuthentication-Results: mx.b.test; body text\r\n.\r\n");
    auto d = h.session->take_delivery();
    REQUIRE(d);
    CHECK(d->message == "Authentication-Results: mx.a.test; spf=pass\r\n"
                        "Authentication-Results: (folded\r\n\tcomment) mx.c.test; dkim=pass\r\n"
                        "Subject: hi\r\n\r\nAuthentication-Results: mx.b.test; body text\r\n");
    CHECK(d->trace.find("Authentication-Results: mx.b.test; x-amtp=pass") != std::string::npos);
    h.session->delivery_done(Reason::none);
    CHECK(h.logged("forged_results=2"));
}

TEST_CASE("A storage failure is never acknowledged: 452 4.3.1 when full, 451 4.3.0 otherwise")
{
    for (auto [reason, expect] : {std::pair{Reason::storage_full, "452 4.3.1 "},
                                  std::pair{Reason::storage_temporary, "451 4.3.0 "}}) {
        Harness h;
        h.authenticate();
        h.send("MAIL FROM:<alice@a.test> MPC=per/individual\r\nRCPT TO:<bob@b.test>\r\nDATA\r\nx\r\n.\r\n");
        REQUIRE(h.session->take_delivery());
        h.session->delivery_done(reason, "ENOSPC");
        CHECK(starts_with(h.session->take_output(), expect));
        CHECK(h.session->messages_accepted() == 0);
    }
}

TEST_CASE("Commands pipelined behind DATA wait until the message is stored")
{
    Harness h;
    h.authenticate();
    h.send("MAIL FROM:<alice@a.test> MPC=per/individual\r\nRCPT TO:<bob@b.test>\r\nDATA\r\nx\r\n.\r\n"
           "MAIL FROM:<alice@a.test> MPC=per/individual\r\nQUIT\r\n");
    REQUIRE(h.session->take_delivery());
    CHECK_FALSE(h.session->wants_close());
    h.session->delivery_done(Reason::none);
    const std::string out = h.session->take_output();
    CHECK(out.find("250 2.0.0 Message accepted") == 0);
    CHECK(out.find("250 2.1.0 Sender OK\r\n221 2.0.0 ") != std::string::npos);
    CHECK(h.session->wants_close());
}

TEST_CASE("A message that already has an MPC header field is refused with 550 5.7.1")
{
    Harness h;
    h.authenticate();
    const std::string out = h.send("MAIL FROM:<alice@a.test> MPC=per/individual\r\nRCPT TO:<bob@b.test>\r\nDATA\r\n"
                                   "Subject: x\r\nmpc: com/optout\r\n\r\nbody\r\n.\r\n");
    CHECK(out.find("550 5.7.1 MPC policy violation: message already has an MPC header field\r\n") != std::string::npos);
    CHECK_FALSE(h.session->take_delivery());
}

TEST_CASE("A message over the size limit is refused with 552 5.3.4 and not kept")
{
    Harness h;
    h.authenticate();
    h.send("MAIL FROM:<alice@a.test> MPC=per/individual\r\nRCPT TO:<bob@b.test>\r\nDATA\r\n");
    const std::string line(500, 'x');
    std::string out;
    for (int i = 0; i < 30; ++i)
        out += h.send(line + "\r\n");
    out += h.send(".\r\n");
    CHECK(out == "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
    CHECK_FALSE(h.session->take_delivery());
}

TEST_CASE("A data line longer than 998 characters is refused with 554 5.6.0")
{
    Harness h;
    h.config->limits.max_message_size = 100000;
    h.authenticate();
    h.send("MAIL FROM:<alice@a.test> MPC=per/individual\r\nRCPT TO:<bob@b.test>\r\nDATA\r\n");
    CHECK(h.send(std::string(5000, 'y') + "\r\n.\r\n") == "554 5.6.0 Message has a line longer than 998 characters\r\n");
}

TEST_CASE("A bare LF never ends the data and the message is refused with 554 5.6.0")
{
    Harness h;
    h.authenticate();
    h.send("MAIL FROM:<alice@a.test> MPC=per/individual\r\nRCPT TO:<bob@b.test>\r\nDATA\r\n");
    CHECK(h.send("a\n.\nMAIL FROM:<evil@a.test> MPC=per/individual\r\n").empty());
    CHECK(h.send(".\r\n") == "554 5.6.0 Message contains a bare LF; lines must end with CRLF\r\n");
}

TEST_CASE("A command line that is too long gets 500 5.5.2")
{
    Harness h;
    h.authenticate();
    CHECK(h.send("NOOP " + std::string(3000, 'z')).empty());
    CHECK(h.send("\r\n") == "500 5.5.2 Line too long\r\n");
    CHECK(h.send("NOOP\r\n") == "250 2.0.0 OK\r\n");
}

TEST_CASE("Unknown commands get 500 5.5.1, VRFY 252, EXPN 502")
{
    Harness h;
    h.authenticate();
    CHECK(h.send("BOGUS\r\n") == "500 5.5.1 Command unrecognized\r\n");
    CHECK(starts_with(h.send("VRFY bob\r\n"), "252 2.5.0 "));
    CHECK(starts_with(h.send("EXPN list\r\n"), "502 5.5.1 "));
    CHECK(h.send("NOOP\r\n") == "250 2.0.0 OK\r\n");
}

TEST_CASE("Too many errors close the session with 421 4.7.0")
{
    Harness h;
    h.connect();
    std::string out;
    for (int i = 0; i < 5; ++i)
        out += h.send("BOGUS\r\n");
    CHECK(out.find("421 4.7.0 Too many errors; closing connection\r\n") != std::string::npos);
    CHECK(h.session->wants_close());
    CHECK(h.send("NOOP\r\n").empty());
}

TEST_CASE("QUIT gets 221 and closes; RSET clears the transaction")
{
    Harness h;
    h.authenticate();
    h.send("MAIL FROM:<alice@a.test> MPC=per/individual\r\n");
    CHECK(h.send("RSET\r\n") == "250 2.0.0 OK\r\n");
    CHECK(starts_with(h.send("RCPT TO:<bob@b.test>\r\n"), "503 5.5.1 "));
    CHECK(h.send("QUIT\r\n") == "221 2.0.0 mx.b.test closing connection\r\n");
    CHECK(h.session->wants_close());
}

TEST_CASE("A timeout closes the session with 421 4.4.2")
{
    Harness h;
    h.connect();
    h.session->timeout();
    CHECK(h.session->take_output() == "421 4.4.2 Timeout; closing connection\r\n");
    CHECK(h.session->wants_close());
}

TEST_CASE("A peer that does not read its replies gets no more commands processed past 4 KiB of them")
{
    Harness h;
    h.connect();
    std::string flood;
    for (int i = 0; i < 1000; ++i)
        flood += "NOOP\r\n";
    h.session->receive(flood);
    // The host has not written anything yet: the session holds the rest back.
    CHECK_FALSE(h.session->wants_input());
    std::string out = h.session->take_output();
    CHECK(out.size() >= ServerSession::max_pending_output);
    CHECK(out.size() < ServerSession::max_pending_output + 64);
    // Each time the host has written what it took, more of the held commands go on.
    std::size_t replies = out.size() / std::string("250 2.0.0 OK\r\n").size();
    while (!h.session->wants_input()) {
        h.session->output_sent();
        const std::string more = h.session->take_output();
        REQUIRE_FALSE(more.empty());
        CHECK(more.size() < ServerSession::max_pending_output + 64);
        replies += more.size() / std::string("250 2.0.0 OK\r\n").size();
    }
    CHECK(replies == 1000);
}

TEST_CASE("A host that feeds more than 64 KiB without waiting is closed with 421 4.7.0 input_overflow")
{
    Harness h;
    h.connect();
    std::string flood;
    while (flood.size() <= ServerSession::max_pending_input)
        flood += "NOOP\r\n";
    h.session->receive(flood);  // processed up to the output bound, the rest held
    h.session->receive(flood);  // ignores wants_input(): too much held
    const std::string out = h.session->take_output();
    CHECK(out.find("421 4.7.0 ") != std::string::npos);
    CHECK(h.session->wants_close());
    CHECK(h.logged("reason=input_overflow"));
}

TEST_CASE("Replies are produced in order for a fully pipelined transaction split at every byte")
{
    Harness h;
    h.authenticate();
    const std::string input = "MAIL FROM:<alice@a.test> MPC=per/individual\r\nRCPT TO:<bob@b.test>\r\nDATA\r\nhello\r\n.\r\n";
    std::string out;
    for (char c : input)
        out += h.send(std::string_view(&c, 1));
    CHECK(out == "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
    auto d = h.session->take_delivery();
    REQUIRE(d);
    CHECK(d->message == "hello\r\n");
}

TEST_CASE("Header carrier: MAIL without MPC is accepted and AMTP-MPC supplies the value (profile B5)")
{
    Harness h;
    h.config->accept_header_carrier = true;
    h.authenticate();
    CHECK(starts_with(h.send("MAIL FROM:<alice@a.test>\r\n"), "250 "));
    h.send("RCPT TO:<bob@b.test>\r\nDATA\r\n");
    h.send("AMTP-MPC: per/individual\r\nSubject: x\r\n\r\nbody\r\n.\r\n");
    auto d = h.session->take_delivery();
    REQUIRE(d);
    CHECK(d->envelope.mpc.str() == "per/individual");
    CHECK(d->message == "Subject: x\r\n\r\nbody\r\n"); // the carrier is removed
}

TEST_CASE("Header carrier: a missing carrier is refused with 555 5.5.4")
{
    Harness h;
    h.config->accept_header_carrier = true;
    h.authenticate();
    const std::string out = h.send("MAIL FROM:<alice@a.test>\r\nRCPT TO:<bob@b.test>\r\nDATA\r\nSubject: x\r\n\r\nb\r\n.\r\n");
    CHECK(out.find("555 5.5.4 MPC parameter required\r\n") != std::string::npos);
}

TEST_CASE("Header carrier: a denied value is refused after DATA with 550 5.7.1")
{
    Harness h;
    h.config->accept_header_carrier = true;
    h.authenticate();
    const std::string out = h.send("MAIL FROM:<shop@a.test>\r\nRCPT TO:<bob@b.test>\r\nDATA\r\n"
                                   "AMTP-MPC: com/optin\r\n\r\nb\r\n.\r\n");
    CHECK(out.find("550 5.7.1 MPC policy violation\r\n") != std::string::npos);
    CHECK_FALSE(h.session->take_delivery());
}

TEST_CASE("Header carrier: a value that disagrees with the MAIL parameter is refused with 550 5.7.1")
{
    Harness h;
    h.config->accept_header_carrier = true;
    h.authenticate();
    const std::string out = h.send("MAIL FROM:<a@a.test> MPC=per/individual\r\nRCPT TO:<bob@b.test>\r\nDATA\r\n"
                                   "AMTP-MPC: com/optin\r\n\r\nb\r\n.\r\n");
    CHECK(out.find("550 5.7.1 MPC policy violation: AMTP-MPC header field disagrees") != std::string::npos);
}

TEST_CASE("STARTTLS mode: only EHLO, STARTTLS, NOOP, RSET, QUIT before TLS; others get 530 5.7.0")
{
    Harness h;
    h.config->starttls = true;
    h.connect(std::nullopt);
    const std::string ehlo = h.send("EHLO mx.a.test\r\n");
    CHECK(ehlo.find("250-STARTTLS\r\n") != std::string::npos);
    CHECK(h.send("MAIL FROM:<a@a.test> MPC=per/individual\r\n") == "530 5.7.0 Must issue a STARTTLS command first\r\n");
    CHECK(h.send("NOOP\r\n") == "250 2.0.0 OK\r\n");
}

TEST_CASE("STARTTLS mode: plaintext pipelined after STARTTLS is discarded and the post-TLS EHLO is checked")
{
    Harness h;
    h.config->starttls = true;
    h.connect(std::nullopt);
    h.send("EHLO mx.a.test\r\n");
    CHECK(h.send("STARTTLS\r\nMAIL FROM:<evil@a.test> MPC=per/individual\r\n") == "220 2.0.0 Ready to start TLS\r\n");
    CHECK(h.session->wants_tls());
    CHECK(h.send("RCPT TO:<bob@b.test>\r\n").empty());
    h.session->tls_established(tls_with({"mx.a.test"}));
    CHECK(starts_with(h.send("MAIL FROM:<a@a.test> MPC=per/individual\r\n"), "503 5.5.1 "));
    h.dns(ptr({"mx.a.test"}));
    CHECK(starts_with(h.send("EHLO mx.a.test\r\n"), "250-mx.b.test"));
    CHECK(starts_with(h.send("STARTTLS\r\n"), "503 5.5.1 "));
}

TEST_CASE("Peer-supplied CR and control characters never reach a log line raw")
{
    Harness h;
    h.connect();
    h.send("EHLO bad\x01name.test\r\n");
    h.send("EHLO mx.a.test\rinjected=1\r\n");
    for (const auto& l : h.log) {
        INFO(l);
        CHECK(l.find('\r') == std::string::npos);
        CHECK(l.find('\x01') == std::string::npos);
    }
}

TEST_CASE("Nasty command input gets a precise reply, never a crash")
{
    const std::string inputs[] = {
        "\r\n", " \r\n", "MAIL\r\n", "MAIL FROM\r\n", "MAIL FROM:\r\n", "MAIL FROM:<\r\n", "MAIL FROM:<a@a.test\r\n",
        "MAIL FROM:<a@a.test> MPC=\r\n", "MAIL FROM:<a@a.test> =x\r\n", "MAIL FROM:<a@a.test>MPC=per/individual\r\n",
        "RCPT TO:<\"unterminated@b.test>\r\n", "RCPT TO:<@route:bob@b.test>\r\n", "DATA extra\r\n",
        "EHLO\r\n", "ehlo MX.A.TEST\r\n", std::string("\0\0\0\r\n", 5), "\xff\xfe\r\n",
    };
    for (const std::string& in : inputs) {
        Harness h;
        h.config->limits.max_errors = 100;
        h.authenticate();
        INFO(in);
        const std::string out = h.send(in + "MAIL FROM:<a@a.test> MPC=per/individual\r\n");
        REQUIRE_FALSE(out.empty());
        CHECK(out.size() >= 5);
        const int code = std::stoi(out.substr(0, 3));
        CHECK(code >= 200);
        CHECK(code < 600);
        CHECK(out.back() == '\n');
    }
}

TEST_CASE("Shutting down waits for the open transaction, then closes with 421 4.3.2")
{
    Harness h;
    h.authenticate();
    h.send("MAIL FROM:<alice@a.test> MPC=per/individual\r\nRCPT TO:<bob@b.test>\r\nDATA\r\npart\r\n");
    h.session->shutdown();
    CHECK(h.session->take_output().empty());
    CHECK_FALSE(h.session->wants_close());
    h.send("rest\r\n.\r\n");
    REQUIRE(h.session->take_delivery());
    h.session->delivery_done(Reason::none);
    const std::string out = h.session->take_output();
    CHECK(out.find("250 2.0.0 Message accepted") == 0);
    CHECK(out.find("421 4.3.2 Service shutting down") != std::string::npos);
    CHECK(h.session->wants_close());
}

TEST_CASE("Shutting down an idle session closes it at once with 421 4.3.2")
{
    Harness h;
    h.authenticate();
    h.session->shutdown();
    CHECK(h.session->take_output() == "421 4.3.2 Service shutting down; closing connection\r\n");
    CHECK(h.session->wants_close());
}
