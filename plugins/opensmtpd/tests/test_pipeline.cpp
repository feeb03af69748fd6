// The gate's command serialiser: smtpd sees one command at a time, the client may
// pipeline, and the end of DATA is found where smtpd finds it.
#include "gate/pipeline.hpp"

#include <catch2/catch.hpp>

using namespace amtp::opensmtpd;

TEST_CASE("Pipelined commands reach smtpd one at a time, each after its reply")
{
    Pipeline p;
    p.from_client("EHLO a\r\n");
    CHECK(p.take_for_server().empty()); // the greeting comes first
    p.from_server("220 mx ESMTP\r\n");
    CHECK(p.take_for_server() == "EHLO a\r\n");
    p.from_server("250-mx Hello\r\n250 HELP\r\n");
    CHECK(p.take_for_client() == "220 mx ESMTP\r\n250-mx Hello\r\n250-PIPELINING\r\n250 HELP\r\n");
    p.from_client("MAIL FROM:<a@a.test> MPC=per/individual\r\nRCPT TO:<b@b.test>\r\nDATA\r\n");
    CHECK(p.take_for_server() == "MAIL FROM:<a@a.test> MPC=per/individual\r\n");
    p.from_server("250 2.0.0 Ok\r\n");
    CHECK(p.take_for_client() == "250 2.1.0 Ok\r\n");
    CHECK(p.take_for_server() == "RCPT TO:<b@b.test>\r\n");
    p.from_server("250 2.1.5 ok\r\n");
    CHECK(p.take_for_server() == "DATA\r\n");
    p.from_server("354 go\r\n");
    CHECK(p.in_data());
    p.from_client("Subject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n");
    CHECK(p.take_for_server() == "Subject: x\r\n\r\n..dot\r\n.\r\n");
    p.from_server("250 2.0.0 queued\r\n");
    CHECK(p.take_for_server() == "QUIT\r\n");
}

TEST_CASE("A single-line EHLO reply also gains PIPELINING; a refused one does not")
{
    Pipeline p;
    p.from_server("220 x\r\n");
    p.from_client("EHLO a\r\n");
    p.from_server("250 mx\r\n");
    CHECK(p.take_for_client() == "220 x\r\n250-mx\r\n250 PIPELINING\r\n");
    p.from_client("EHLO b\r\n");
    p.from_server("504 5.7.1 no\r\n");
    CHECK(p.take_for_client() == "504 5.7.1 no\r\n");
}

TEST_CASE("The site's MPC line is advertised in a positive EHLO reply, before PIPELINING, never in a refusal")
{
    Pipeline p;
    p.add_ehlo_keyword("MPC DENY=*/optout");
    p.from_server("220 x\r\n");
    p.from_client("EHLO a\r\n");
    p.from_server("250-mx Hello\r\n250-8BITMIME\r\n250 SIZE 100\r\n");
    CHECK(p.take_for_client() ==
          "220 x\r\n250-mx Hello\r\n250-MPC DENY=*/optout\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100\r\n");
    p.from_client("EHLO b\r\n");
    p.from_server("504 5.7.1 no\r\n");
    CHECK(p.take_for_client() == "504 5.7.1 no\r\n");
    p.from_client("EHLO c\r\n");
    p.from_server("250 mx\r\n");
    CHECK(p.take_for_client() == "250-mx\r\n250-MPC DENY=*/optout\r\n250 PIPELINING\r\n");
}

TEST_CASE("The end of DATA is a dot line at a line start, split across reads or not")
{
    Pipeline p;
    p.from_server("220 x\r\n");
    p.from_client("DATA\r\n");
    p.from_server("354 go\r\n");
    p.take_for_server();
    p.from_client("a.\r\n.");
    CHECK(p.in_data());
    p.from_client("\r\nNOOP\r\n");
    CHECK_FALSE(p.in_data());
    CHECK(p.take_for_server() == "a.\r\n.\r\n");
}

TEST_CASE("A command line without end is refused, not passed on")
{
    Pipeline p;
    p.from_server("220 x\r\n");
    p.from_client(std::string(Pipeline::max_command_line + 10, 'A'));
    CHECK(p.command_overflow());
    CHECK(p.take_for_server().empty());
}

TEST_CASE("A bare 250 to EHLO keeps its CRLF when PIPELINING is added")
{
    // Found by fuzz_opensmtpd_gate: "250\r\n" became "250-\n" (a bare LF to the client).
    Pipeline p;
    p.from_server("220 x\r\n");
    p.from_client("EHLO a\r\n");
    p.from_server("250\r\n");
    CHECK(p.take_for_client() == "220 x\r\n250-\r\n250 PIPELINING\r\n");
}
