// ClientSession against a scripted server: each test feeds the server's reply bytes
// and checks exactly what the session writes back and how each recipient ends.
#include "amtp/client_session.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <utility>
#include <vector>

using namespace amtp;

namespace {

const std::string body_text = "Subject: hello\r\n\r\nHi there.\r\n";
const std::string body_wire = "Subject: hello\r\n\r\nHi there.\r\n.\r\n";

OutgoingMessage message(std::vector<std::string> recipients, MpcValue mpc = {"per", "individual"},
                        std::string data = body_text)
{
    OutgoingMessage m;
    m.sender = "alice@client.example";
    m.recipients = std::move(recipients);
    m.mpc = std::move(mpc);
    m.data = std::move(data);
    return m;
}

// An EHLO reply naming the server and then one keyword a line.
std::string ehlo(std::initializer_list<std::string> keywords)
{
    std::string out = "250";
    out += keywords.size() == 0 ? " " : "-";
    out += "mx.example.net greets client.example\r\n";
    std::size_t n = 0;
    for (const auto& k : keywords)
        out += std::string("250") + (++n == keywords.size() ? " " : "-") + k + "\r\n";
    return out;
}

// The scripted server: say() feeds reply bytes, returns what the client wrote.
struct Server {
    explicit Server(OutgoingMessage m) : client("client.example", std::move(m)) {}
    std::string say(std::string_view bytes)
    {
        client.receive(bytes);
        return client.take_output();
    }
    // Greeting and EHLO, returning what the client wrote after the EHLO reply.
    std::string open(const std::string& ehlo_reply)
    {
        REQUIRE(client.take_output().empty());   // nothing before the greeting
        REQUIRE(say("220 mx.example.net AMTP ready\r\n") == "EHLO client.example\r\n");
        return say(ehlo_reply);
    }
    RecipientStatus status(std::size_t i) const { return client.outcomes().at(i).status; }
    const Reply& reply(std::size_t i) const { return client.outcomes().at(i).reply; }
    ClientSession client;
};

void require_complete(const ClientSession& c)
{
    REQUIRE(c.done());
    for (const auto& o : c.outcomes())
        REQUIRE(o.status != RecipientStatus::pending);
}

struct Step {
    std::string server;   // bytes the server sends
    std::string client;   // exactly what the client must write in answer
};

// Runs a dialogue either whole or one byte at a time: the output must not differ.
void run(ClientSession& c, const std::vector<Step>& steps, bool bytewise)
{
    for (const auto& step : steps) {
        INFO("server sends: " << step.server);
        if (bytewise) {
            std::string written;
            for (const char b : step.server) {
                c.receive(std::string_view(&b, 1));
                written += c.take_output();
            }
            CHECK(written == step.client);
        } else {
            c.receive(step.server);
            CHECK(c.take_output() == step.client);
        }
    }
}

} // namespace

TEST_CASE("The client sends EHLO after the greeting and MPC= with MAIL")
{
    Server s(message({"bob@mx.example.net"}));
    CHECK(s.open(ehlo({"8BITMIME"})) == "MAIL FROM:<alice@client.example> MPC=per/individual\r\n");
    CHECK(s.say("250 2.1.0 OK\r\n") == "RCPT TO:<bob@mx.example.net>\r\n");
    CHECK(s.say("250 2.1.5 OK\r\n") == "DATA\r\n");
    CHECK(s.say("354 Go ahead\r\n") == body_wire);
    CHECK(s.say("250 2.0.0 queued as 1234\r\n") == "QUIT\r\n");
    require_complete(s.client);
    CHECK(s.status(0) == RecipientStatus::delivered);
    CHECK(s.reply(0).code == 250);
    CHECK(s.reply(0).text == "queued as 1234");
    CHECK_FALSE(s.client.used_header_carrier());
    CHECK_FALSE(s.client.server_declarations().has_value());
    // The 221 is accepted and changes nothing.
    CHECK(s.say("221 2.0.0 Bye\r\n").empty());
    CHECK(s.status(0) == RecipientStatus::delivered);
}

TEST_CASE("The client sends MPC= with MAIL")
{
    // The value goes out in lower case, as the draft defines it (s4.5).
    Server s(message({"bob@mx.example.net"}, {"COM", "Confirmed"}));
    CHECK(s.open(ehlo({})) == "MAIL FROM:<alice@client.example> MPC=com/confirmed\r\n");

    OutgoingMessage bounce = message({"alice@client.example"}, {"net", "autoresponse"});
    bounce.sender = "";
    Server b(std::move(bounce));
    CHECK(b.open(ehlo({})) == "MAIL FROM:<> MPC=net/autoresponse\r\n");
}

TEST_CASE("With PIPELINING MAIL and every RCPT go in one write and DATA after their replies")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net"}));
    CHECK(s.open(ehlo({"PIPELINING"})) ==
          "MAIL FROM:<alice@client.example> MPC=per/individual\r\n"
          "RCPT TO:<a@mx.example.net>\r\n"
          "RCPT TO:<b@mx.example.net>\r\n");
    CHECK(s.say("250 OK\r\n250 OK\r\n").empty());
    CHECK(s.say("250 OK\r\n") == "DATA\r\n");
    CHECK(s.say("354 go\r\n") == body_wire);
    CHECK(s.say("250 OK\r\n") == "QUIT\r\n");
    require_complete(s.client);
    CHECK(s.status(0) == RecipientStatus::delivered);
    CHECK(s.status(1) == RecipientStatus::delivered);
}

TEST_CASE("SIZE and BODY=8BITMIME go with MAIL when the server advertises them")
{
    const std::string data = "Subject: caf\xc3\xa9\n\nline\n";   // LF endings: 3 CRs added
    Server s(message({"bob@mx.example.net"}, {"per", "individual"}, data));
    CHECK(s.open(ehlo({"SIZE 10240000", "8BITMIME"})) ==
          "MAIL FROM:<alice@client.example> MPC=per/individual SIZE=" + std::to_string(data.size() + 3) +
              " BODY=8BITMIME\r\n");

    // 7-bit data: no BODY=; SIZE without a number still takes SIZE=.
    Server t(message({"bob@mx.example.net"}));
    CHECK(t.open(ehlo({"SIZE", "8BITMIME"})) == "MAIL FROM:<alice@client.example> MPC=per/individual SIZE=" +
                                                    std::to_string(body_text.size()) + "\r\n");

    // 8-bit data to a server without 8BITMIME: no BODY= (the server decides).
    Server u(message({"bob@mx.example.net"}, {"per", "individual"}, data));
    CHECK(u.open(ehlo({})) == "MAIL FROM:<alice@client.example> MPC=per/individual\r\n");
}

TEST_CASE("A message larger than the server's SIZE fails permanently with 552 5.3.4 and no MAIL")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net"}));
    CHECK(s.open(ehlo({"SIZE 10"})) == "QUIT\r\n");
    require_complete(s.client);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(s.status(i) == RecipientStatus::permanent);
        CHECK(s.reply(i).code == 552);
        CHECK(s.reply(i).enhanced == "5.3.4");
        CHECK(s.reply(i).reason == Reason::message_too_big);
    }
}

TEST_CASE("A DENY in the server's EHLO MPC line makes the client QUIT without MAIL")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net"}, {"com", "optout"}));
    CHECK(s.open(ehlo({"PIPELINING", "MPC DENY=*/optout"})) == "QUIT\r\n");
    require_complete(s.client);
    CHECK(s.client.mpc_denied());
    REQUIRE(s.client.server_declarations().has_value());
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(s.status(i) == RecipientStatus::permanent);
        CHECK(s.reply(i).code == 550);
        CHECK(s.reply(i).enhanced == "5.7.1");
        CHECK(s.reply(i).reason == Reason::mpc_denied);
        CHECK_THAT(s.reply(i).text, Catch::Contains("MPC DENY=*/optout") && Catch::Contains("com/optout"));
    }
}

TEST_CASE("The last matching declaration decides (draft example)")
{
    // Draft s4.4.2: only individual and confirmed commercial mail is welcome.
    const std::string line = "MPC DENY=com/* ALLOW=com/individual ALLOW=com/confirmed";
    const std::pair<MpcValue, bool> cases[] = {
        {{"com", "individual"}, true}, {{"com", "confirmed"}, true},  {{"com", "optout"}, false},
        {{"com", "optin"}, false},     {{"com", "customer"}, false}, {{"per", "individual"}, true},
        {{"ngo", "optout"}, true},
    };
    for (const auto& [mpc, allowed] : cases) {
        INFO(mpc.str());
        Server s(message({"bob@mx.example.net"}, mpc));
        const std::string out = s.open(ehlo({line}));
        CHECK(s.client.mpc_denied() == !allowed);
        CHECK(out == (allowed ? "MAIL FROM:<alice@client.example> MPC=" + mpc.str() + "\r\n" : "QUIT\r\n"));
    }
}

TEST_CASE("A server that declares DENY com/* but ALLOW com/individual accepts com/individual")
{
    // The draft's example forms as well as the ABNF, on one line or several.
    const std::vector<std::vector<std::string>> forms = {
        {"MPC DENY=com/* ALLOW=com/individual"},
        {"MPC DENY com/* ALLOW com/individual"},
        {"mpc deny=COM/* allow=Com/Individual"},
        {"MPC-DENY com/*", "MPC-ALLOW com/individual"},
        {"MPC DENY=com/*", "MPC ALLOW=com/individual"},
    };
    for (const auto& lines : forms) {
        INFO(lines.front());
        std::string reply = "250-mx.example.net\r\n";
        for (std::size_t i = 0; i < lines.size(); ++i)
            reply += (i + 1 < lines.size() ? "250-" : "250 ") + lines[i] + "\r\n";
        Server yes(message({"bob@mx.example.net"}, {"com", "individual"}));
        CHECK(yes.open(reply) == "MAIL FROM:<alice@client.example> MPC=com/individual\r\n");
        Server no(message({"bob@mx.example.net"}, {"com", "optin"}));
        CHECK(no.open(reply) == "QUIT\r\n");
        CHECK(no.client.mpc_denied());
    }
}

TEST_CASE("The client reads a leading ALLOW as implying DENY */* before it")
{
    Server s(message({"bob@mx.example.net"}, {"com", "individual"}));
    CHECK(s.open(ehlo({"MPC ALLOW=per/*"})) == "QUIT\r\n");
    CHECK(s.client.mpc_denied());
    Server t(message({"bob@mx.example.net"}, {"per", "optin"}));
    CHECK(t.open(ehlo({"MPC ALLOW=per/*"})) == "MAIL FROM:<alice@client.example> MPC=per/optin\r\n");
}

TEST_CASE("mpc/individual is sent even to a server that declares DENY */*")
{
    Server s(message({"postmaster@mx.example.net"}, {"mpc", "individual"}));
    CHECK(s.open(ehlo({"MPC DENY=*/*"})) == "MAIL FROM:<alice@client.example> MPC=mpc/individual\r\n");
    CHECK_FALSE(s.client.mpc_denied());
}

TEST_CASE("A malformed MPC line is no usable declaration, and 555 after it is a refusal")
{
    Server s(message({"bob@mx.example.net"}, {"com", "optout"}));
    CHECK(s.open(ehlo({"MPC DENY=com/nonsense"})) == "MAIL FROM:<alice@client.example> MPC=com/optout\r\n");
    CHECK_FALSE(s.client.server_declarations().has_value());
    CHECK_FALSE(s.client.mpc_denied());
    // The server spoke of MPC, so it knows the parameter: no header carrier.
    CHECK(s.say("555 5.5.4 MPC parameter required\r\n") == "QUIT\r\n");
    require_complete(s.client);
    CHECK(s.status(0) == RecipientStatus::permanent);
    CHECK_FALSE(s.client.used_header_carrier());
}

TEST_CASE("A server that rejects the MPC parameter without advertising MPC gets the AMTP-MPC header carrier")
{
    for (const char* refusal : {"555 5.5.4 Unsupported option: MPC=per/individual\r\n",
                                "501 5.5.4 Syntax error in parameters\r\n"}) {
        INFO(refusal);
        Server s(message({"bob@mx.example.net"}));
        CHECK(s.open(ehlo({"8BITMIME", "SIZE 1000000"})) ==
              "MAIL FROM:<alice@client.example> MPC=per/individual SIZE=" + std::to_string(body_text.size()) +
                  "\r\n");
        CHECK(s.say(refusal) == "RSET\r\n");
        // The header adds its own length to SIZE=.
        const std::string header = "AMTP-MPC: per/individual\r\n";
        CHECK(s.say("250 2.0.0 OK\r\n") ==
              "MAIL FROM:<alice@client.example> SIZE=" + std::to_string(header.size() + body_text.size()) +
                  "\r\n");
        CHECK(s.say("250 OK\r\n") == "RCPT TO:<bob@mx.example.net>\r\n");
        CHECK(s.say("250 OK\r\n") == "DATA\r\n");
        CHECK(s.say("354 go\r\n") == header + body_wire);
        CHECK(s.say("250 OK\r\n") == "QUIT\r\n");
        require_complete(s.client);
        CHECK(s.client.used_header_carrier());
        CHECK(s.status(0) == RecipientStatus::delivered);
    }
}

TEST_CASE("The header carrier sends one recipient per transaction")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net", "c@mx.example.net", "d@mx.example.net"}));
    s.open(ehlo({}));
    CHECK(s.say("555 5.5.4 Unknown parameter\r\n") == "RSET\r\n");
    const std::string mail = "MAIL FROM:<alice@client.example>\r\n";
    const std::string wire = "AMTP-MPC: per/individual\r\n" + body_wire;
    run(s.client,
        {
            {"250 OK\r\n", mail},
            {"250 OK\r\n", "RCPT TO:<a@mx.example.net>\r\n"},
            {"250 OK\r\n", "DATA\r\n"},
            {"354 go\r\n", wire},
            // Delivered: the transaction is over, no RSET before the next one.
            {"250 OK\r\n", mail},
            {"250 OK\r\n", "RCPT TO:<b@mx.example.net>\r\n"},
            // Refused at RCPT: the open transaction needs RSET.
            {"550 5.1.1 No such user\r\n", "RSET\r\n"},
            {"250 OK\r\n", mail},
            {"250 OK\r\n", "RCPT TO:<c@mx.example.net>\r\n"},
            {"250 OK\r\n", "DATA\r\n"},
            {"354 go\r\n", wire},
            // A per-recipient rule applied after DATA: one verdict, one recipient.
            {"550 5.7.1 MPC policy violation\r\n", mail},
            {"250 OK\r\n", "RCPT TO:<d@mx.example.net>\r\n"},
            {"250 OK\r\n", "DATA\r\n"},
            {"354 go\r\n", wire},
            {"451 4.7.1 MPC temporary failure\r\n", "QUIT\r\n"},
        },
        false);
    require_complete(s.client);
    CHECK(s.status(0) == RecipientStatus::delivered);
    CHECK(s.status(1) == RecipientStatus::permanent);
    CHECK(s.reply(1).enhanced == "5.1.1");
    CHECK(s.status(2) == RecipientStatus::permanent);
    CHECK(s.reply(2).text == "MPC policy violation");
    CHECK(s.status(3) == RecipientStatus::temporary);
}

TEST_CASE("With PIPELINING the header carrier skips the RCPT replies behind the refused MAIL")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net"}));
    CHECK(s.open(ehlo({"PIPELINING"})) ==
          "MAIL FROM:<alice@client.example> MPC=per/individual\r\n"
          "RCPT TO:<a@mx.example.net>\r\n"
          "RCPT TO:<b@mx.example.net>\r\n");
    CHECK(s.say("555 5.5.4 MPC unknown\r\n") == "RSET\r\n");
    CHECK(s.say("503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n").empty());
    CHECK(s.say("250 OK\r\n") == "MAIL FROM:<alice@client.example>\r\nRCPT TO:<a@mx.example.net>\r\n");
    CHECK(s.say("250 OK\r\n250 OK\r\n") == "DATA\r\n");
    CHECK(s.say("354 go\r\n") == "AMTP-MPC: per/individual\r\n" + body_wire);
    CHECK(s.say("250 OK\r\n") == "MAIL FROM:<alice@client.example>\r\nRCPT TO:<b@mx.example.net>\r\n");
    CHECK(s.say("250 OK\r\n250 OK\r\n") == "DATA\r\n");
    CHECK(s.say("354 go\r\n") == "AMTP-MPC: per/individual\r\n" + body_wire);
    CHECK(s.say("250 OK\r\n") == "QUIT\r\n");
    require_complete(s.client);
    CHECK(s.status(0) == RecipientStatus::delivered);
    CHECK(s.status(1) == RecipientStatus::delivered);
}

TEST_CASE("A server that advertises MPC but answers 555 to MAIL refuses permanently without fallback")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net"}));
    CHECK(s.open(ehlo({"MPC ALLOW=*/*"})) == "MAIL FROM:<alice@client.example> MPC=per/individual\r\n");
    CHECK(s.say("555 5.5.4 Malformed MPC value\r\n") == "QUIT\r\n");
    require_complete(s.client);
    CHECK_FALSE(s.client.used_header_carrier());
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(s.status(i) == RecipientStatus::permanent);
        CHECK(s.reply(i).code == 555);
    }
}

TEST_CASE("A refusal of MAIL without MPC in the header carrier is final")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net"}));
    s.open(ehlo({}));
    CHECK(s.say("501 5.5.4 what is MPC\r\n") == "RSET\r\n");
    CHECK(s.say("250 OK\r\n") == "MAIL FROM:<alice@client.example>\r\n");
    // MAIL concerns the sender, so it answers for the recipients still waiting too.
    CHECK(s.say("501 5.1.7 Bad sender\r\n") == "QUIT\r\n");
    require_complete(s.client);
    CHECK(s.status(0) == RecipientStatus::permanent);
    CHECK(s.status(1) == RecipientStatus::permanent);
    CHECK(s.reply(1).enhanced == "5.1.7");
}

TEST_CASE("A 504 EHLO reply fails every recipient permanently")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net"}));
    CHECK(s.open("504 5.7.1 Authentication failed: PTR record does not match EHLO name\r\n") == "QUIT\r\n");
    require_complete(s.client);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(s.status(i) == RecipientStatus::permanent);
        CHECK(s.reply(i).code == 504);
        CHECK(s.reply(i).enhanced == "5.7.1");
        CHECK(s.reply(i).text == "Authentication failed: PTR record does not match EHLO name");
    }
}

TEST_CASE("A 4xx EHLO reply is temporary for every recipient")
{
    Server s(message({"a@mx.example.net"}));
    CHECK(s.open("451 4.4.3 Temporary DNS failure; try again later\r\n") == "QUIT\r\n");
    require_complete(s.client);
    CHECK(s.status(0) == RecipientStatus::temporary);
    CHECK(s.reply(0).enhanced == "4.4.3");
}

TEST_CASE("A 4xx greeting defers every recipient and a 554 greeting fails them")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net"}));
    CHECK(s.say("450 busy\r\n") == "QUIT\r\n");
    require_complete(s.client);
    CHECK(s.status(0) == RecipientStatus::temporary);
    CHECK(s.status(1) == RecipientStatus::temporary);

    Server t(message({"a@mx.example.net"}));
    CHECK(t.say("554-no service for you\r\n554 go away\r\n") == "QUIT\r\n");
    require_complete(t.client);
    CHECK(t.status(0) == RecipientStatus::permanent);
    CHECK(t.reply(0).more == std::vector<std::string>{"go away"});
}

TEST_CASE("A 4xx RCPT reply is temporary for that recipient only")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net", "c@mx.example.net"}));
    s.open(ehlo({}));
    CHECK(s.say("250 OK\r\n") == "RCPT TO:<a@mx.example.net>\r\n");
    CHECK(s.say("250 OK\r\n") == "RCPT TO:<b@mx.example.net>\r\n");
    CHECK(s.say("450 4.2.1 mailbox busy\r\n") == "RCPT TO:<c@mx.example.net>\r\n");
    CHECK(s.say("550 5.7.1 MPC policy violation\r\n") == "DATA\r\n");
    CHECK(s.say("354 go\r\n") == body_wire);
    CHECK(s.say("250 OK\r\n") == "QUIT\r\n");
    require_complete(s.client);
    CHECK(s.status(0) == RecipientStatus::delivered);
    CHECK(s.status(1) == RecipientStatus::temporary);
    CHECK(s.reply(1).code == 450);
    CHECK(s.reply(1).enhanced == "4.2.1");
    CHECK(s.status(2) == RecipientStatus::permanent);
}

TEST_CASE("A MAIL refusal decides every recipient by its class")
{
    for (const auto& [reply, status] : {std::pair{"451 4.7.1 MPC temporary failure\r\n", RecipientStatus::temporary},
                                        std::pair{"550 5.7.1 MPC policy violation\r\n", RecipientStatus::permanent}}) {
        INFO(reply);
        Server s(message({"a@mx.example.net", "b@mx.example.net"}));
        s.open(ehlo({"PIPELINING"}));
        CHECK(s.say(reply) == "QUIT\r\n");
        // The RCPT replies that follow arrive after QUIT and change nothing.
        CHECK(s.say("503 no\r\n503 no\r\n221 bye\r\n").empty());
        require_complete(s.client);
        CHECK(s.status(0) == status);
        CHECK(s.status(1) == status);
        CHECK_FALSE(s.client.mpc_denied());   // only the EHLO declarations set it
    }
}

TEST_CASE("When no recipient is accepted the client QUITs without DATA")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net"}));
    CHECK(s.open(ehlo({"PIPELINING"})).find("RCPT TO:<b@mx.example.net>") != std::string::npos);
    CHECK(s.say("250 OK\r\n550 no\r\n452 4.5.3 Too many recipients\r\n") == "QUIT\r\n");
    require_complete(s.client);
    CHECK(s.status(0) == RecipientStatus::permanent);
    CHECK(s.status(1) == RecipientStatus::temporary);
}

TEST_CASE("A DATA refusal or a final 4xx/5xx decides the accepted recipients")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net"}));
    s.open(ehlo({"PIPELINING"}));
    CHECK(s.say("250 OK\r\n250 OK\r\n550 no such user\r\n") == "DATA\r\n");
    CHECK(s.say("554 5.5.1 no valid recipients\r\n") == "QUIT\r\n");
    require_complete(s.client);
    CHECK(s.status(0) == RecipientStatus::permanent);
    CHECK(s.reply(0).code == 554);
    CHECK(s.reply(1).code == 550);

    Server t(message({"a@mx.example.net", "b@mx.example.net"}));
    t.open(ehlo({"PIPELINING"}));
    CHECK(t.say("250 OK\r\n250 OK\r\n250 OK\r\n") == "DATA\r\n");
    CHECK(t.say("354 go\r\n") == body_wire);
    CHECK(t.say("452 4.3.1 Insufficient system storage\r\n") == "QUIT\r\n");
    require_complete(t.client);
    CHECK(t.status(0) == RecipientStatus::temporary);
    CHECK(t.status(1) == RecipientStatus::temporary);
}

TEST_CASE("Dot-stuffing doubles leading dots and ends with CRLF.CRLF")
{
    const std::pair<std::string, std::string> cases[] = {
        {"", ".\r\n"},
        {"a", "a\r\n.\r\n"},
        {"a\r\n", "a\r\n.\r\n"},
        {"a\n", "a\r\n.\r\n"},
        {".", "..\r\n.\r\n"},
        {".\r\n", "..\r\n.\r\n"},
        {"a\n.\nb", "a\r\n..\r\nb\r\n.\r\n"},
        {"..x\r\n.y\n", "...x\r\n..y\r\n.\r\n"},
        {"a.b\r\n", "a.b\r\n.\r\n"},
        {"\n\n", "\r\n\r\n.\r\n"},
        {"a\rb\r\n", "a\rb\r\n.\r\n"},       // a lone CR is not a line ending
        {"a\r.b\n", "a\r.b\r\n.\r\n"},       // so the dot after it is not at a line start
        {"a\r\r\n.", "a\r\r\n..\r\n.\r\n"},
        {"a\r", "a\r\r\n.\r\n"},
        {"\r\n.\r\n", "\r\n..\r\n.\r\n"},
    };
    for (const auto& [in, out] : cases) {
        INFO('"' << in << '"');
        CHECK(dot_stuff("", in) == out);
    }
    // The prefix and the data are one stream.
    CHECK(dot_stuff("AMTP-MPC: per/individual\r\n", ".x") == "AMTP-MPC: per/individual\r\n..x\r\n.\r\n");
    CHECK(dot_stuff("H: v\n", "") == "H: v\r\n.\r\n");
}

TEST_CASE("Replies split across reads at any byte are handled")
{
    const std::string mail = "MAIL FROM:<alice@client.example> MPC=per/individual\r\n";
    const std::vector<Step> steps = {
        {"220-mx.example.net AMTP\r\n220 ready\r\n", "EHLO client.example\r\n"},
        {ehlo({"PIPELINING", "SIZE 100000", "MPC DENY=*/optout ALLOW=*/individual"}),
         "MAIL FROM:<alice@client.example> MPC=per/individual SIZE=" + std::to_string(body_text.size()) +
             "\r\nRCPT TO:<a@mx.example.net>\r\nRCPT TO:<b@mx.example.net>\r\n"},
        {"250 2.1.0 OK\r\n250 2.1.5 OK\n450-4.2.1 try\r\n450 4.2.1 later\r\n", "DATA\r\n"},
        {"354 go\r\n", body_wire},
        {"250 2.0.0 OK\r\n", "QUIT\r\n"},
        {"221 2.0.0 bye\r\n", ""},
    };
    for (const bool bytewise : {false, true}) {
        INFO("bytewise " << bytewise);
        ClientSession c("client.example", message({"a@mx.example.net", "b@mx.example.net"}));
        run(c, steps, bytewise);
        require_complete(c);
        CHECK(c.outcomes()[0].status == RecipientStatus::delivered);
        CHECK(c.outcomes()[1].status == RecipientStatus::temporary);
        CHECK(c.outcomes()[1].reply.enhanced == "4.2.1");
        CHECK(c.outcomes()[1].reply.more == std::vector<std::string>{"later"});
    }
}

TEST_CASE("Reply lines ending in a bare LF are accepted")
{
    Server s(message({"a@mx.example.net"}));
    CHECK(s.say("220 hi\n") == "EHLO client.example\r\n");
    CHECK(s.say("250-mx\n250 PIPELINING\n") ==
          "MAIL FROM:<alice@client.example> MPC=per/individual\r\nRCPT TO:<a@mx.example.net>\r\n");
    CHECK(s.say("250 ok\n250 ok\n") == "DATA\r\n");
    CHECK(s.say("354 go\n") == body_wire);
    CHECK(s.say("250 ok\n") == "QUIT\r\n");
    CHECK(s.status(0) == RecipientStatus::delivered);
}

TEST_CASE("Enhanced status codes are recognised on every reply")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net", "c@mx.example.net"}));
    s.open(ehlo({"PIPELINING"}));
    s.say("250 2.1.0 Sender OK\r\n"
          "550-5.7.1 MPC policy violation\r\n550 5.7.1 see policy\r\n"
          "450 4.7.1\r\n"      // the code alone
          "550 4.2.1 odd\r\n");  // class disagrees with the code: it stays text
    CHECK(s.reply(0).enhanced == "5.7.1");
    CHECK(s.reply(0).text == "MPC policy violation");
    CHECK(s.reply(0).more == std::vector<std::string>{"see policy"});
    CHECK(s.reply(1).enhanced == "4.7.1");
    CHECK(s.reply(1).text.empty());
    CHECK(s.reply(2).enhanced.empty());
    CHECK(s.reply(2).text == "4.2.1 odd");
    // Not a status code: too many digits, or no space after it.
    Server t(message({"a@mx.example.net", "b@mx.example.net"}));
    t.open(ehlo({"PIPELINING"}));
    t.say("250 OK\r\n550 5.1234.1 x\r\n550 5.1.1x\r\n");
    CHECK(t.reply(0).enhanced.empty());
    CHECK(t.reply(1).enhanced.empty());
    CHECK(t.reply(1).text == "5.1.1x");
}

TEST_CASE("Malformed replies end the session with temporary outcomes, never a crash")
{
    const std::string long_line(100 * 1024, 'x');
    const std::string nasty[] = {
        "garbage\r\n",
        "25\r\n",
        "999 x\r\n",
        "199 x\r\n",
        "600 x\r\n",
        "099 x\r\n",
        "250x\r\n",
        "\r\n",
        "2a0 x\r\n",
        "250-first\r\n550 second\r\n",
        std::string("250 a\0b\r\n", 9),
        std::string("\0\0\0\r\n", 5),
        "250 " + long_line + "\r\n",
        "250 " + long_line,   // no LF at all
        "354 go\r\n",         // a 3xx where none belongs
    };
    // The same bytes at the greeting, as the EHLO reply and as a RCPT reply.
    for (int stage = 0; stage < 3; ++stage) {
        for (const auto& bytes : nasty) {
            INFO("stage " << stage << ": " << bytes.substr(0, 30));
            Server s(message({"a@mx.example.net", "b@mx.example.net"}));
            if (stage >= 1)
                REQUIRE(s.say("220 hi\r\n") == "EHLO client.example\r\n");
            if (stage >= 2) {
                REQUIRE(s.say(ehlo({"PIPELINING"})).find("RCPT") != std::string::npos);
                REQUIRE(s.say("250 OK\r\n").empty());   // MAIL accepted
            }
            const std::string out = s.say(bytes);
            CHECK(out.size() >= 6);
            CHECK(out.substr(out.size() - 6) == "QUIT\r\n");
            require_complete(s.client);
            for (std::size_t i = 0; i < 2; ++i) {
                CHECK(s.status(i) == RecipientStatus::temporary);
                CHECK(s.reply(i).reason == Reason::protocol_error);
            }
        }
    }
}

TEST_CASE("A reply line longer than 64 KiB without LF is a protocol error even in pieces")
{
    Server s(message({"a@mx.example.net"}));
    const std::string chunk(4096, 'y');
    std::string out = s.say("220 ");
    for (int i = 0; i < 16 && out.empty(); ++i)
        out = s.say(chunk);
    CHECK(out == "QUIT\r\n");
    CHECK(s.status(0) == RecipientStatus::temporary);
    CHECK(s.reply(0).reason == Reason::protocol_error);
    CHECK_THAT(s.reply(0).text, Catch::Contains("longer than 65536"));
}

TEST_CASE("A 421 reply at any stage defers every undecided recipient and QUITs")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net", "c@mx.example.net"}));
    s.open(ehlo({"PIPELINING"}));
    CHECK(s.say("250 OK\r\n550 no\r\n421 4.3.2 shutting down\r\n") == "QUIT\r\n");
    require_complete(s.client);
    CHECK(s.status(0) == RecipientStatus::permanent);   // decided before: stays
    CHECK(s.status(1) == RecipientStatus::temporary);
    CHECK(s.status(2) == RecipientStatus::temporary);
    CHECK(s.reply(2).code == 421);
}

TEST_CASE("A lost connection makes undecided recipients temporary and keeps decided ones")
{
    Server s(message({"a@mx.example.net", "b@mx.example.net"}));
    s.open(ehlo({}));
    s.say("250 OK\r\n");
    s.say("550 5.1.1 unknown\r\n");
    s.say("250 OK\r\n");   // DATA sent
    s.client.connection_lost("connection reset by peer");
    require_complete(s.client);
    CHECK(s.status(0) == RecipientStatus::permanent);
    CHECK(s.status(1) == RecipientStatus::temporary);
    CHECK(s.reply(1).reason == Reason::connection_failed);
    CHECK_THAT(s.reply(1).text, Catch::Contains("connection reset by peer"));
    CHECK(s.say("250 late\r\n").empty());
    CHECK(s.status(1) == RecipientStatus::temporary);
}

TEST_CASE("Paths and values that cannot go on a command line are refused before sending")
{
    Server s(message({"a@mx.example.net", "b@x>\r\nRCPT TO:<evil@x", ""}));
    CHECK(s.status(1) == RecipientStatus::permanent);
    CHECK(s.reply(1).reason == Reason::bad_recipient);
    CHECK(s.status(2) == RecipientStatus::permanent);
    CHECK(s.open(ehlo({"PIPELINING"})) ==
          "MAIL FROM:<alice@client.example> MPC=per/individual\r\nRCPT TO:<a@mx.example.net>\r\n");

    OutgoingMessage bad_sender = message({"a@mx.example.net"});
    bad_sender.sender = "a@b\r\nDATA";
    ClientSession c("client.example", bad_sender);
    require_complete(c);
    CHECK(c.outcomes()[0].reply.reason == Reason::bad_sender);
    CHECK(c.take_output().empty());

    ClientSession u("client.example", message({"a@mx.example.net"}, {"com", "spam"}));
    require_complete(u);
    CHECK(u.outcomes()[0].reply.reason == Reason::mpc_undefined);

    ClientSession none("client.example", message({}));
    CHECK(none.done());
    CHECK(none.outcomes().empty());

    CHECK_THROWS_AS(ClientSession("client.example\r\nMAIL", message({"a@mx.example.net"})), std::invalid_argument);
    CHECK_THROWS_AS(ClientSession("", message({"a@mx.example.net"})), std::invalid_argument);
}

TEST_CASE("Random server bytes never crash the session or leave a recipient pending once done")
{
    std::mt19937 rng(20040401);
    const std::vector<std::string> pieces = {
        "220 hi\r\n", "250 OK\r\n", "250-", "PIPELINING\r\n", "MPC DENY=*/optout\r\n", "354 go\r\n",
        "550 no\r\n", "451 later\r\n", "421 bye\r\n", "555 what\r\n", "\n", "\r", "2", "5", " ",
        std::string(1, '\0'), "\xff", "SIZE 1\r\n", "250 5.1.1 x\r\n", "221 bye\r\n",
    };
    for (int round = 0; round < 2000; ++round) {
        Server s(message({"a@mx.example.net", "b@mx.example.net", "c@mx.example.net"},
                         round % 2 ? MpcValue{"com", "optout"} : MpcValue{"per", "individual"}));
        for (int i = 0; i < 40 && !s.client.done(); ++i)
            s.say(pieces[rng() % pieces.size()]);
        if (!s.client.done())
            s.client.connection_lost("test over");
        require_complete(s.client);
    }
}
