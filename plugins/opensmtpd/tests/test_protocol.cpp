// The filter's reader and writer: whatever smtpd sends, the parser returns a value,
// and nothing we write can hold a line break (smtpd exits on one malformed line).
#include "filter/protocol.hpp"

#include <catch2/catch.hpp>

#include <random>

using namespace amtp;
using namespace amtp::opensmtpd;

TEST_CASE("A filter request is parsed with its parameter unsplit")
{
    const Event e = parse_event("filter|0.6|1795460747.228626|smtp-in|data-line|063da0b269de823d|27c797f5c6f0f260|a|b||c");
    const auto* f = std::get_if<FilterEvent>(&e);
    REQUIRE(f);
    CHECK(f->version == "0.6");
    CHECK(f->phase == "data-line");
    CHECK(f->session == "063da0b269de823d");
    CHECK(f->token == "27c797f5c6f0f260");
    CHECK(f->param == "a|b||c");
}

TEST_CASE("An empty data line and a missing parameter are both empty")
{
    const Event e = parse_event("filter|0.7|1|smtp-in|data-line|ab|cd|");
    const auto* a = std::get_if<FilterEvent>(&e);
    REQUIRE(a);
    CHECK(a->param.empty());
    const Event b = parse_event("filter|0.7|1|smtp-in|commit|ab|cd");
    REQUIRE(std::get_if<FilterEvent>(&b));
    CHECK(std::get<FilterEvent>(b).param.empty());
}

TEST_CASE("A protocol-client report keeps the command whole")
{
    const Event e = parse_event("report|0.7|1.5|smtp-in|protocol-client|0123abcd|MAIL FROM:<a|b@a.test> MPC=per/individual");
    const auto* r = std::get_if<ReportEvent>(&e);
    REQUIRE(r);
    CHECK(r->event == "protocol-client");
    CHECK(r->rest == "MAIL FROM:<a|b@a.test> MPC=per/individual");
}

TEST_CASE("Config lines, with and without a value")
{
    const Event ready = parse_event("config|ready");
    REQUIRE(std::get_if<ConfigEvent>(&ready));
    CHECK(std::get<ConfigEvent>(ready).key == "ready");
    const Event version = parse_event("config|smtpd-version|6.8.0p2");
    REQUIRE(std::get_if<ConfigEvent>(&version));
    CHECK(std::get<ConfigEvent>(version).value == "6.8.0p2");
}

TEST_CASE("Nasty input is Malformed, never an exception")
{
    const char* lines[] = {
        "", "|", "||||||||", "filter", "filter|", "filter|0.6", "filter|0.6|1|smtp-in|ehlo",
        "filter|0.6|1|smtp-in|ehlo|", "filter|0.6|1|smtp-in|ehlo|zz|tok", "filter|0.6|1|smtp-in|ehlo|ab|x y",
        "filter|0.6|1|smtp-in|ehlo|ab", "report|0.6|1|smtp-in|link-connect|../../etc", "config|",
        "config||value", "garbage|0.6|1|smtp-in|x|ab|cd", "filter|0.6||smtp-in|ehlo|ab|cd",
        "filter|0.6|1|smtp in|ehlo|ab|cd", "filter|0.6|1|smtp-in|ehlo|0123456789abcdef0123456789abcdef0|cd",
    };
    for (const char* l : lines) {
        INFO(l);
        CHECK_NOTHROW(parse_event(l));
        CHECK(std::holds_alternative<Malformed>(parse_event(l)));
    }
    // Random bytes, including NUL, CR and '|': always some value.
    std::mt19937 rng(42);
    const std::string alphabet = std::string("|\r\n\0 filterpoc-0123456789abcdef.", 32);
    for (int i = 0; i < 20000; ++i) {
        std::string s;
        const int n = static_cast<int>(rng() % 80);
        for (int k = 0; k < n; ++k)
            s += alphabet[rng() % alphabet.size()];
        if (i % 3 == 0)
            s = "filter|0.6|1|smtp-in|" + s;
        CHECK_NOTHROW(parse_event(s));
    }
}

TEST_CASE("Output lines never hold a line break, whatever the text")
{
    const Reply r = make_reply(550, "5.7.1", "bad\r\nfilter-result|x|y|proceed");
    const std::string out = reject("ab", "cd", r) + rewrite("ab", "cd", "<a@b>\nX") + dataline("ab", "cd", "x\ry\0z");
    std::size_t lines = 0;
    for (char c : out)
        lines += c == '\n';
    CHECK(lines == 3);
    CHECK(out.find('\r') == std::string::npos);
    CHECK(reject("ab", "cd", make_reply(550, "5.7.1", "MPC policy violation")) ==
          "filter-result|ab|cd|reject|550 5.7.1 MPC policy violation\n");
}

TEST_CASE("A positive reply is never sent as a rejection (smtpd would answer 421)")
{
    CHECK(reply_text(make_reply(250, "2.0.0", "OK")) == "451 4.3.0 Temporary AMTP filter error");
}

TEST_CASE("The last reply of a session's output is read with its enhanced code")
{
    const Reply r = last_reply("250-mx.b.test\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n504 5.7.1 Authentication failed: no PTR record\r\n");
    CHECK(r.code == 504);
    CHECK(r.enhanced == "5.7.1");
    CHECK(r.text == "Authentication failed: no PTR record");
    CHECK(last_reply("250-mx.b.test Hello\r\n250 PIPELINING\r\n").code == 250);
    CHECK(last_reply("354 End data\r\n").enhanced.empty());
    CHECK(last_reply("250-unfinished\r\n").code == 0);
    CHECK(last_reply("").code == 0);
}

TEST_CASE("Registration lines name every phase and report, then ready")
{
    CHECK(register_lines({"ehlo"}, {"link-connect"}) ==
          "register|filter|smtp-in|ehlo\nregister|report|smtp-in|link-connect\nregister|ready\n");
}
