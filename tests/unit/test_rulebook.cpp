// The rulebook's stages called directly, as the Exim and Haraka adapters call them:
// each verdict carries the table's reply and one log line naming its reason, and the
// rules that the adapters used to copy (and got wrong) hold for every caller.
#include "amtp/message_headers.hpp"
#include "amtp/rulebook.hpp"
#include "amtp/trace_headers.hpp"

#include <catch2/catch.hpp>

#include <memory>

using namespace amtp;

namespace {

DeclarationList rules(std::initializer_list<Declaration> items)
{
    return DeclarationList(std::vector<Declaration>(items));
}

std::shared_ptr<const ServerConfig> config(ListenerKind kind = ListenerKind::public_network, bool header_carrier = false)
{
    auto policy = std::make_shared<Policy>();
    policy->advertise = rules({{false, {"*", "optout"}}});
    policy->recipients["carol@b.test"] = rules({{false, {"com", "*"}}});
    policy->recipients["remote@far.test"] = rules({{false, {"com", "*"}}});
    policy->senders["shop@b.test"] = MpcValue{"com", "optin"};
    auto c = std::make_shared<ServerConfig>();
    c->hostname = "mx.b.test";
    c->listener = kind;
    c->local_domains = {"b.test"};
    c->limits.max_message_size = 1000;
    c->limits.max_recipients = 2;
    c->policy = std::move(policy);
    c->accept_header_carrier = header_carrier;
    return c;
}

TlsInfo tls_for(const std::string& name)
{
    TlsInfo t;
    Identity id;
    id.names = {name};
    id.subject = "CN=" + name;
    id.sha256 = std::string(64, 'b');
    t.identity.identity = id;
    t.version = "TLSv1.3";
    t.cipher = "TLS_AES_128_GCM_SHA256";
    return t;
}

ReverseDnsResult ptr(std::vector<std::string> names)
{
    ReverseDnsResult r;
    r.status = DnsStatus::answer;
    r.names = std::move(names);
    return r;
}

// A session authenticated as mx.a.test.
SessionFacts authenticated(const Rulebook& book, ListenerKind kind)
{
    SessionFacts f = book.open(*IpAddress::parse("127.0.0.2"), "R1", kind);
    book.tls_established(f, tls_for("mx.a.test"));
    Verdict v = book.ehlo(f, "mx.a.test");
    if (v.needs_ptr)
        v = book.ehlo_ptr(f, ptr({"mx.a.test"}));
    REQUIRE(v.reply.code == 250);
    REQUIRE(f.authenticated);
    return f;
}

// Every refusal: the table's reply and one log line with its reason.
void check_refusal(const Verdict& v, Reason reason)
{
    CHECK(v.reason == reason);
    const Reply table = reply_for(reason);
    CHECK(v.reply.code == table.code);
    CHECK(v.reply.enhanced == table.enhanced);
    if (reason != Reason::unknown_parameter)   // that one names the keyword
        CHECK(v.reply.text == table.text);
    CHECK(v.log.find(std::string("result=fail reason=") + reason_name(reason)) != std::string::npos);
}

} // namespace

TEST_CASE("Rulebook: EHLO asks for the PTR on public listeners only, and binds the name to it")
{
    const Rulebook book(config());
    SessionFacts f = book.open(*IpAddress::parse("127.0.0.2"), "R1", ListenerKind::public_network);
    book.tls_established(f, tls_for("mx.a.test"));
    Verdict v = book.ehlo(f, "mx.a.test");
    CHECK(v.needs_ptr);
    CHECK_FALSE(f.authenticated);
    check_refusal(book.ehlo_ptr(f, ptr({"other.a.test"})), Reason::ptr_mismatch);
    CHECK_FALSE(f.authenticated);

    const Rulebook private_book(config(ListenerKind::private_network));
    SessionFacts p = private_book.open(*IpAddress::parse("10.1.2.3"), "R2", ListenerKind::private_network);
    private_book.tls_established(p, tls_for("dyn1.isp.test"));
    v = private_book.ehlo(p, "dyn1.isp.test");
    CHECK_FALSE(v.needs_ptr);
    CHECK(v.reply.code == 250);
    CHECK(p.authenticated);
    CHECK(p.ptr_name.empty());
}

TEST_CASE("Rulebook: a temporary PTR failure is 451 4.4.3 and is asked again at the next EHLO")
{
    const Rulebook book(config());
    SessionFacts f = book.open(*IpAddress::parse("127.0.0.2"), "R1", ListenerKind::public_network);
    book.tls_established(f, tls_for("mx.a.test"));
    REQUIRE(book.ehlo(f, "mx.a.test").needs_ptr);
    ReverseDnsResult temporary;
    temporary.status = DnsStatus::temporary;
    const Verdict v = book.ehlo_ptr(f, temporary);
    check_refusal(v, Reason::dns_temporary);
    CHECK(v.reply.code == 451);
    CHECK_FALSE(f.reverse);
    CHECK(book.ehlo(f, "mx.a.test").needs_ptr);
}

TEST_CASE("Rulebook: HELO, a bad EHLO name and a name not in the certificate are refused and logged")
{
    const Rulebook book(config());
    SessionFacts f = book.open(*IpAddress::parse("127.0.0.2"), "R1", ListenerKind::public_network);
    book.tls_established(f, tls_for("mx.a.test"));
    check_refusal(book.helo(f), Reason::helo_refused);
    check_refusal(book.ehlo(f, "localhost"), Reason::ehlo_syntax);
    check_refusal(book.ehlo(f, "other.a.test"), Reason::ehlo_not_in_cert);
    SessionFacts none = book.open(*IpAddress::parse("127.0.0.2"), "R2", ListenerKind::public_network);
    check_refusal(book.ehlo(none, "mx.a.test"), Reason::no_client_cert);
}

TEST_CASE("Rulebook: MAIL checks SIZE before the MPC, so a message too big is 552 whatever its MPC")
{
    const Rulebook book(config());
    SessionFacts f = authenticated(book, ListenerKind::public_network);
    check_refusal(book.mail(f, "FROM:<a@a.test> SIZE=5000 MPC=com/optout"), Reason::message_too_big);
    check_refusal(book.mail(f, "FROM:<a@a.test> MPC=com/optout SIZE=5000"), Reason::message_too_big);
    check_refusal(book.mail(f, "FROM:<a@a.test> SIZE=500 MPC=com/optout"), Reason::mpc_denied);
    check_refusal(book.mail(f, "FROM:<a@a.test> SIZE=5x MPC=per/individual"), Reason::syntax_error);
    check_refusal(book.mail(f, "FROM:<a@a.test> SIZE= MPC=per/individual"), Reason::syntax_error);
    const Verdict unknown = book.mail(f, "FROM:<a@a.test> XFOO=1 MPC=per/individual");
    CHECK(unknown.reason == Reason::unknown_parameter);
    CHECK(unknown.reply.text.find("XFOO") != std::string::npos);
    check_refusal(book.mail(f, "FROM:<a@a.test>"), Reason::mpc_missing);
    const Verdict ok = book.mail(f, "FROM:<a@a.test> SIZE=500 BODY=8BITMIME MPC=per/individual");
    CHECK(ok.reply.wire() == "250 2.1.0 Sender OK\r\n");
    CHECK(f.in_mail);
    CHECK(f.mpc_from_parameter);
}

TEST_CASE("Rulebook: MAIL before an authenticated EHLO is 503 5.5.1 ehlo_first")
{
    const Rulebook book(config());
    SessionFacts f = book.open(*IpAddress::parse("127.0.0.2"), "R1", ListenerKind::public_network);
    check_refusal(book.mail(f, "FROM:<a@a.test> MPC=per/individual"), Reason::ehlo_first);
    check_refusal(book.rcpt(f, "TO:<bob@b.test>"), Reason::ehlo_first);
}

TEST_CASE("Rulebook: RCPT applies the limit, relaying, then the recipient's MPC rules")
{
    const Rulebook book(config());
    SessionFacts f = authenticated(book, ListenerKind::public_network);
    REQUIRE(book.mail(f, "FROM:<a@a.test> MPC=com/optin").reply.code == 250);
    check_refusal(book.rcpt(f, "TO:<remote@far.test>"), Reason::relay_denied);
    check_refusal(book.rcpt(f, "TO:<carol@b.test>"), Reason::mpc_denied);
    CHECK(book.rcpt(f, "TO:<bob@B.TEST>").reply.code == 250);
    CHECK(book.rcpt(f, "TO:<eve@b.test>").reply.code == 250);
    const Verdict limit = book.rcpt(f, "TO:<frank@b.test>");
    check_refusal(limit, Reason::too_many_recipients);
    CHECK(limit.reply.code == 452);
    CHECK(f.envelope.recipients == std::vector<std::string>{"bob@b.test", "eve@b.test"});
    check_refusal(book.rcpt(f, "TO:<bob@b.test> NOTIFY=NEVER"), Reason::unknown_parameter);
}

TEST_CASE("Rulebook: on a private listener a relayed recipient still gets its MPC rules")
{
    const Rulebook book(config(ListenerKind::private_network));
    SessionFacts f = authenticated(book, ListenerKind::private_network);
    REQUIRE(book.mail(f, "FROM:<a@a.test> MPC=com/optin").reply.code == 250);
    check_refusal(book.rcpt(f, "TO:<remote@far.test>"), Reason::mpc_denied);
    const Verdict other = book.rcpt(f, "TO:<someone@far.test>");
    CHECK(other.reply.code == 250);
    CHECK(f.envelope.local == std::vector<bool>{false});
}

TEST_CASE("Rulebook: at the end of DATA a carrier disagreeing with MAIL's MPC is 550 5.7.1 mpc_conflict")
{
    const Rulebook book(config(ListenerKind::public_network, true));
    SessionFacts f = authenticated(book, ListenerKind::public_network);
    REQUIRE(book.mail(f, "FROM:<a@a.test> MPC=per/individual").reply.code == 250);
    REQUIRE(book.rcpt(f, "TO:<bob@b.test>").reply.code == 250);
    MessageFacts m;
    m.carriers = {"com/optin"};
    check_refusal(book.message(f, m), Reason::mpc_conflict);
    CHECK_FALSE(f.in_mail);

    // The header carrier alone: the declarations and every recipient's rules apply now.
    REQUIRE(book.mail(f, "FROM:<a@a.test>").reply.code == 250);
    REQUIRE(book.rcpt(f, "TO:<carol@b.test>").reply.code == 250);
    m.carriers = {"com/optin"};
    check_refusal(book.message(f, m), Reason::mpc_denied);
    REQUIRE(book.mail(f, "FROM:<a@a.test>").reply.code == 250);
    REQUIRE(book.rcpt(f, "TO:<bob@b.test>").reply.code == 250);
    m.carriers = {"per/individual"};
    const Verdict ok = book.message(f, m);
    CHECK_FALSE(ok.refused());
    CHECK(f.envelope.mpc.str() == "per/individual");
    const std::string trace = book.trace_fields(f, 1795000000);
    CHECK(trace.rfind("Received: from mx.a.test (mx.a.test [127.0.0.2])", 0) == 0);
    CHECK(trace.find("Authentication-Results: mx.b.test;") != std::string::npos);
    const Verdict accepted = book.accepted(f, m, "R1-1");
    CHECK(accepted.reply.wire() == "250 2.0.0 Message accepted, id R1-1\r\n");
    CHECK(accepted.log.find("result=accepted reason=none mpc=per/individual") != std::string::npos);
    CHECK_FALSE(f.in_mail);
}

TEST_CASE("Rulebook: the end of DATA judges size, then line length, bare LF, an MPC field, the carrier")
{
    const Rulebook book(config());
    SessionFacts f = authenticated(book, ListenerKind::public_network);
    const auto open = [&] {
        REQUIRE(book.mail(f, "FROM:<a@a.test> MPC=per/individual").reply.code == 250);
        REQUIRE(book.rcpt(f, "TO:<bob@b.test>").reply.code == 250);
    };
    MessageFacts m;
    m.size = 5000;
    m.bare_linefeed = true;
    m.mpc_field = true;
    open();
    check_refusal(book.message(f, m), Reason::message_too_big);
    m.size = 10;
    m.line_too_long = true;
    open();
    check_refusal(book.message(f, m), Reason::data_line_too_long);
    m.line_too_long = false;
    open();
    check_refusal(book.message(f, m), Reason::bare_linefeed);
    m.bare_linefeed = false;
    open();
    check_refusal(book.message(f, m), Reason::mpc_header_present);
    m.mpc_field = false;
    m.carriers = {"per/individual", "per/individual"};
    open();
    check_refusal(book.message(f, m), Reason::mpc_duplicate);
}

TEST_CASE("Rulebook: the outgoing MPC is the given value unchanged, else autoresponse for bounces, else the binding")
{
    const auto c = config();
    const Policy* policy = c->policy.get();
    CHECK(outgoing_mpc(policy, " com/optin\n", "shop@b.test").value->str() == "com/optin");
    const OutgoingMpc bad = outgoing_mpc(policy, "com/bulk", "shop@b.test");
    CHECK_FALSE(bad.value);
    CHECK(bad.reason == Reason::mpc_undefined);
    CHECK(outgoing_mpc(policy, "", "").value->str() == "net/autoresponse");
    CHECK(outgoing_mpc(policy, "", "shop@b.test").value->str() == "com/optin");
    CHECK_FALSE(outgoing_mpc(policy, "", "nobody@b.test").value);
    CHECK_FALSE(outgoing_mpc(nullptr, "", "shop@b.test").value);
}
