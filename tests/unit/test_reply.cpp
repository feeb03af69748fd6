#include "amtp/log.hpp"
#include "amtp/reply.hpp"

#include <catch2/catch.hpp>

#include <set>

using namespace amtp;

TEST_CASE("The profile's reply codes come from one table (profile B4)")
{
    CHECK(reply_for(Reason::helo_refused).wire() == "504 5.5.1 HELO is not supported by AMTP; use EHLO\r\n");
    CHECK(reply_for(Reason::ptr_mismatch).code == 504);
    CHECK(reply_for(Reason::ptr_mismatch).enhanced == "5.7.1");
    CHECK(reply_for(Reason::mpc_denied).wire() == "550 5.7.1 MPC policy violation\r\n");
    CHECK(reply_for(Reason::mpc_temporary).wire() == "451 4.7.1 MPC temporary failure\r\n");
    CHECK(reply_for(Reason::mpc_missing).wire() == "555 5.5.4 MPC parameter required\r\n");
    CHECK(reply_for(Reason::mpc_malformed).wire() == "501 5.5.4 Malformed MPC value\r\n");
    CHECK(reply_for(Reason::dns_temporary).wire() == "451 4.4.3 Temporary DNS failure; try again later\r\n");
    CHECK(reply_for(Reason::storage_full).wire() == "452 4.3.1 Insufficient system storage\r\n");
}

TEST_CASE("A temporary DNS or storage failure is never a permanent reply")
{
    for (Reason r : {Reason::dns_temporary, Reason::storage_full, Reason::storage_temporary, Reason::mpc_temporary,
                     Reason::timeout, Reason::connection_failed}) {
        INFO(reason_name(r));
        CHECK(reply_for(r).temporary());
    }
}

TEST_CASE("Every reason has a distinct name and a refusal whose enhanced code agrees with its class")
{
    std::set<std::string> names;
    for (int i = static_cast<int>(Reason::none); i < static_cast<int>(Reason::count_); ++i) {
        const auto r = static_cast<Reason>(i);
        const Reply reply = reply_for(r);
        INFO(reason_name(r));
        CHECK(names.insert(reason_name(r)).second);
        CHECK(reply.reason == r);
        CHECK_FALSE(reply.positive());
        CHECK(reply.code >= 400);
        CHECK(reply.code < 600);
        REQUIRE(reply.enhanced.size() == 5);
        CHECK(reply.enhanced[0] - '0' == reply.code / 100);
        CHECK_FALSE(reply.text.empty());
        CHECK(std::string(reason_name(r)) != "invalid_reason");
        if (r != Reason::none)
            CHECK(std::string(reason_name(r)) != "none");
    }
}

TEST_CASE("The refusal for no reason is 451 4.3.0, never 250")
{
    // No caller asks for it; one that did would have a bug, and the peer retries.
    const Reply r = reply_for(Reason::none);
    CHECK(r.wire() == "451 4.3.0 Local error in processing\r\n");
    CHECK(r.temporary());
    CHECK(r.reason == Reason::none);
    CHECK(std::string(reason_name(Reason::none)) == "none");
}

TEST_CASE("A value that is not a reason gets 451 4.3.0 and is not named none")
{
    for (int i : {static_cast<int>(Reason::count_), static_cast<int>(Reason::count_) + 1, -1, 1000000}) {
        const auto r = static_cast<Reason>(i);
        INFO(i);
        const Reply reply = reply_for(r, "detail");
        CHECK(reply.wire() == "451 4.3.0 Local error in processing (detail)\r\n");
        CHECK_FALSE(reply.positive());
        CHECK(std::string(reason_name(r)) == "invalid_reason");
    }
}

TEST_CASE("Refusals decided by hosts and adapters come from the table")
{
    CHECK(std::string(reason_name(Reason::tls_handshake)) == "tls_handshake");
    CHECK(reply_for(Reason::tls_handshake).wire() == "421 4.7.0 TLS handshake failed; closing connection\r\n");
    CHECK(std::string(reason_name(Reason::smtpd_unreachable)) == "smtpd_unreachable");
    CHECK(reply_for(Reason::smtpd_unreachable).wire() == "421 4.4.1 Mail service not reachable; try again later\r\n");
    // The filter's answer before this entry existed, byte for byte.
    CHECK(std::string(reason_name(Reason::not_registered)) == "not_registered");
    CHECK(reply_for(Reason::not_registered).wire() ==
          "554 5.7.1 Connection refused: it did not come through the AMTP gate\r\n");
    CHECK(std::string(reason_name(Reason::bad_local_part)) == "bad_local_part");
    CHECK(reply_for(Reason::bad_local_part).permanent());
    CHECK(reply_for(Reason::bad_local_part).enhanced == "5.1.3");
    CHECK(std::string(reason_name(Reason::too_many_connections)) == "too_many_connections");
    CHECK(reply_for(Reason::too_many_connections).wire() == "421 4.7.0 Too many connections; try again later\r\n");
}

TEST_CASE("Multi-line replies use dashes and repeat the enhanced code")
{
    Reply r = make_reply(250, "2.0.0", "first");
    r.more = {"second", "third"};
    CHECK(r.wire() == "250-2.0.0 first\r\n250-2.0.0 second\r\n250 2.0.0 third\r\n");
}

TEST_CASE("Reply details and log values cannot carry CR or LF")
{
    const Reply r = reply_for(Reason::syntax_error, "x\r\n250 fake");
    CHECK(r.wire().find("\r\n250") == std::string::npos);
    LogLine l("ehlo");
    l.kv("ehlo", "a\r\nevent=forged").kv("n", 3LL).kv("q", "has \"quote\"");
    CHECK(l.str() == "event=ehlo ehlo=\"a\\x0d\\x0aevent=forged\" n=3 q=\"has \\x22quote\\x22\"");
    CHECK(printable("\xff\x7f") == "\\xff\\x7f");
}
