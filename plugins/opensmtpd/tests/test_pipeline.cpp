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

TEST_CASE("The gate's first line goes to smtpd after the greeting, before the client's; its reply is not passed on")
{
    Pipeline p;
    p.send_first("X-AMTP-GATE 00ff\r\n");
    p.from_client("EHLO a\r\n");
    CHECK(p.take_for_server().empty());
    p.from_server("220 mx ESMTP\r\n");
    CHECK(p.take_for_server() == "X-AMTP-GATE 00ff\r\n");
    p.from_server("500 5.5.1 Invalid command: Command unrecognized\r\n");
    CHECK(p.take_for_server() == "EHLO a\r\n");
    p.from_server("250 mx\r\n");
    CHECK(p.take_for_client() == "220 mx ESMTP\r\n250-mx\r\n250 PIPELINING\r\n");
}

TEST_CASE("A 421 in answer to the gate's first line reaches the client")
{
    Pipeline p;
    p.send_first("X-AMTP-GATE 00ff\r\n");
    p.from_server("220 mx ESMTP\r\n");
    p.from_server("421 4.3.0 shutting down\r\n");
    CHECK(p.take_for_client() == "220 mx ESMTP\r\n421 4.3.0 shutting down\r\n");
}

TEST_CASE("Backpressure: a client flooding NOOP without reading stops being read")
{
    // The pipeline holds the client's commands while smtpd answers one at a time ...
    Pipeline p;
    p.from_server("220 mx\r\n");
    std::string flood;
    for (int i = 0; i < 4000; ++i)
        flood += "NOOP\r\n";
    p.from_client(flood);
    CHECK(p.take_for_server() == "NOOP\r\n");
    Flow f;
    f.client_backlog = p.client_backlog();
    CHECK(f.client_backlog > Flow::cap);
    CHECK_FALSE(f.read_client());   // ... so the gate stops reading the client
    CHECK(f.read_server());
    // A client that does not take its replies stops the reading of smtpd's, and of
    // its own input, and its input no longer counts as a sign of life.
    Flow g;
    g.client_unsent = Flow::cap;
    CHECK_FALSE(g.read_server());
    CHECK_FALSE(g.read_client());
    CHECK_FALSE(g.client_input_is_activity());
    // smtpd not taking what the client sends (DATA) stops the client's input too.
    Flow h;
    h.server_unsent = Flow::cap + 1;
    CHECK_FALSE(h.read_client());
    CHECK(h.read_server());
    Flow idle;
    CHECK(idle.read_client());
    CHECK(idle.client_input_is_activity());
}

TEST_CASE("Backpressure: a long DATA line or reply line without its end is passed on, so reading goes on")
{
    Pipeline p;
    p.from_server("220 mx\r\n");
    p.from_client("DATA\r\n");
    p.from_server("354 go\r\n");
    (void)p.take_for_server();
    p.from_client(std::string(6000, 'x'));  // more than data_chunk, no line end yet
    CHECK(p.take_for_server().size() == 6000);
    Flow f;
    f.client_backlog = p.client_backlog();
    CHECK(f.read_client());
    p.from_client("\r\n.\r\n");
    CHECK(p.take_for_server() == "\r\n.\r\n");
    p.from_server(std::string(6000, 'y'));  // a reply line without its end
    CHECK(p.server_backlog() < Flow::cap);
}
