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

TEST_CASE("Every reason has a distinct name and a reply whose enhanced code agrees with its class")
{
    std::set<std::string> names;
    for (int i = static_cast<int>(Reason::none); i <= static_cast<int>(Reason::protocol_error); ++i) {
        const auto r = static_cast<Reason>(i);
        const Reply reply = reply_for(r);
        INFO(reason_name(r));
        CHECK(names.insert(reason_name(r)).second);
        CHECK(reply.code >= 200);
        CHECK(reply.code < 600);
        REQUIRE(reply.enhanced.size() == 5);
        CHECK(reply.enhanced[0] - '0' == reply.code / 100);
        if (r != Reason::none)
            CHECK(std::string(reason_name(r)) != "none");
    }
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
