#include "amtp/smtp_syntax.hpp"

#include <catch2/catch.hpp>

using namespace amtp;

TEST_CASE("Command verbs are case-insensitive and the argument is trimmed")
{
    const Command c = split_command("mail   FROM:<a@b.test>  ");
    CHECK(c.verb == "MAIL");
    CHECK(c.argument == "FROM:<a@b.test>");
    CHECK(split_command("QUIT").argument.empty());
}

TEST_CASE("MAIL paths and ESMTP parameters are parsed")
{
    const auto p = parse_path_command("FROM:<alice@a.test> MPC=per/individual size=100 BODY=8BITMIME", "FROM");
    REQUIRE(p);
    CHECK(p->address == "alice@a.test");
    REQUIRE(p->parameters.size() == 3);
    CHECK(p->parameters[0].keyword == "MPC");
    CHECK(p->parameters[0].value == "per/individual");
    CHECK(p->parameters[1].keyword == "SIZE");
    CHECK(parse_path_command("from: <>", "FROM")->address.empty());
    CHECK(parse_path_command("TO:<@r1,@r2:bob@b.test>", "TO")->address == "bob@b.test");
    CHECK(parse_path_command("TO:<\"a>b\"@b.test>", "TO")->address == "\"a>b\"@b.test");
}

TEST_CASE("Malformed MAIL and RCPT arguments are syntax errors")
{
    for (const char* bad : {"", "FROM", "FROM:", "FROM:a@b.test", "FROM:<a@b.test", "FROM:<a@b.test>MPC=x",
                            "FROM:<a@b.test> =x", "FROM:<a@b.test> MPC=a=b", "TO:<a@b.test>", "FROM:<a@b> -X"}) {
        INFO(bad);
        CHECK_FALSE(parse_path_command(bad, "FROM"));
    }
}

TEST_CASE("Mailboxes need a valid local part and a fully qualified domain")
{
    auto m = parse_mailbox("Alice.Smith@A.Test.");
    REQUIRE(m);
    CHECK(m->local == "Alice.Smith");
    CHECK(m->domain == "a.test");
    CHECK(parse_mailbox("\"john doe\"@a.test"));
    for (const char* bad : {"", "@a.test", "a@", "a@b", ".a@b.test", "a.@b.test", "a..b@b.test", "a b@b.test",
                            "a@b..test", "\"unterminated@b.test", "a\x01@b.test"}) {
        INFO(bad);
        CHECK_FALSE(parse_mailbox(bad));
    }
    CHECK_FALSE(parse_mailbox(std::string(65, 'a') + "@b.test"));
}

TEST_CASE("Exactly one MPC parameter is required (draft s4.4.3)")
{
    auto params = [](std::string_view arg) { return parse_path_command(arg, "FROM")->parameters; };
    CHECK(mpc_parameter(params("FROM:<a@b.test>"), true).reason == Reason::mpc_missing);
    CHECK(mpc_parameter(params("FROM:<a@b.test>"), false).reason == Reason::none);
    CHECK(mpc_parameter(params("FROM:<a@b.test> MPC=per/individual MPC=per/individual"), true).reason == Reason::mpc_duplicate);
    CHECK(mpc_parameter(params("FROM:<a@b.test> MPC"), true).reason == Reason::mpc_malformed);
    CHECK(mpc_parameter(params("FROM:<a@b.test> MPC=foo/individual"), true).reason == Reason::mpc_undefined);
    const auto ok = mpc_parameter(params("FROM:<a@b.test> mpc=Com/OptIn"), true);
    REQUIRE(ok.value);
    CHECK(ok.value->str() == "com/optin");
}
