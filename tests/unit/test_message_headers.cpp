#include <catch2/catch.hpp>

#include "amtp/message_headers.hpp"

#include <string>
#include <vector>

using namespace amtp;

namespace {

// Feeds the lines to a scanner and returns the lines it keeps.
std::vector<std::string> scan(HeaderScanner& s, const std::vector<std::string>& lines)
{
    std::vector<std::string> kept;
    for (const auto& l : lines)
        if (s.line(l))
            kept.push_back(l);
    return kept;
}

} // namespace

TEST_CASE("A message that already has an MPC field is detected")
{
    for (const std::string field : {"MPC: per/individual", "mpc: per/individual", "Mpc : com/optin", "mPc:x",
                                    "MPC\t:per/individual", "MPC:"}) {
        INFO(field);
        HeaderScanner s;
        const auto kept = scan(s, {"From: a@a.test", field, "Subject: hi", "", "body"});
        CHECK(s.has_mpc_field());
        CHECK(kept.size() == 5);
        CHECK(s.carrier_values().empty());
    }
}

TEST_CASE("A folded MPC field is detected and kept whole")
{
    HeaderScanner s;
    const auto kept = scan(s, {"Subject: x", "MPC:", "\tper/individual", "", "body"});
    CHECK(s.has_mpc_field());
    CHECK(kept.size() == 5);
}

TEST_CASE("Fields whose names only contain MPC are not MPC fields")
{
    HeaderScanner s;
    scan(s, {"X-MPC: per/individual", "MPC-Foo: per/individual", "MPCX: y", "Comments: MPC: per/individual",
             " MPC: folded into Comments", "", "body"});
    CHECK_FALSE(s.has_mpc_field());
}

TEST_CASE("MPC text in the body is ignored")
{
    HeaderScanner s;
    const auto kept = scan(s, {"Subject: x", "", "MPC: per/individual", "AMTP-MPC: com/optout", ""});
    CHECK_FALSE(s.has_mpc_field());
    CHECK(s.carrier_values().empty());
    CHECK(kept.size() == 5);
    CHECK_FALSE(s.in_header());
}

TEST_CASE("The AMTP-MPC carrier is extracted and removed")
{
    HeaderScanner s;
    const auto kept = scan(s, {"AMTP-MPC:  per/individual  ", "From: a@a.test", "", "body"});
    REQUIRE(s.carrier_values() == std::vector<std::string>{"per/individual"});
    CHECK(kept == std::vector<std::string>{"From: a@a.test", "", "body"});
    CHECK_FALSE(s.has_mpc_field());
}

TEST_CASE("A folded AMTP-MPC carrier is unfolded and removed with its continuation lines")
{
    HeaderScanner s;
    const auto kept = scan(s, {"From: a@a.test", "amtp-mpc :", " \tper/individual ", "Subject: x", " more subject",
                               "", "body"});
    REQUIRE(s.carrier_values() == std::vector<std::string>{"per/individual"});
    CHECK(kept == std::vector<std::string>{"From: a@a.test", "Subject: x", " more subject", "", "body"});

    HeaderScanner t;
    scan(t, {"AMTP-MPC: per/", "\tindividual", ""});
    // Unfolding keeps the blank that followed the line break.
    CHECK(t.carrier_values() == std::vector<std::string>{"per/\tindividual"});
}

TEST_CASE("Two AMTP-MPC carriers are both reported")
{
    HeaderScanner s;
    const auto kept = scan(s, {"AMTP-MPC: per/individual", "AMTP-MPC: com/optout", "", "x"});
    CHECK(s.carrier_values() == std::vector<std::string>{"per/individual", "com/optout"});
    CHECK(kept.size() == 2);
}

TEST_CASE("Lines still ending in CR are scanned like bare lines")
{
    HeaderScanner s;
    const auto kept = scan(s, {"AMTP-MPC: per/individual\r", "\tcontinued\r", "mpc: x\r", "\r", "MPC: body\r"});
    CHECK(s.carrier_values() == std::vector<std::string>{"per/individual\tcontinued"});
    CHECK(s.has_mpc_field());
    CHECK_FALSE(s.in_header());
    CHECK(kept == std::vector<std::string>{"mpc: x\r", "\r", "MPC: body\r"});
}

TEST_CASE("An empty message has no MPC field and no carrier")
{
    HeaderScanner s;
    CHECK(s.in_header());
    CHECK_FALSE(s.has_mpc_field());
    CHECK(s.carrier_values().empty());
    CHECK(s.line(""));
    CHECK_FALSE(s.in_header());
}

TEST_CASE("A message that is only a header is scanned to its end")
{
    HeaderScanner s;
    scan(s, {"From: a@a.test", "Subject: x", "AMTP-MPC: per/individual"});
    CHECK(s.in_header());
    CHECK(s.carrier_values() == std::vector<std::string>{"per/individual"});
}

TEST_CASE("Only an empty line ends the header; blank and malformed lines do not")
{
    HeaderScanner s;
    const auto kept = scan(s, {"From: a@a.test", " ", "not a field", "\x01garbage\x7f", ": no name", "MPC: x", ""});
    CHECK(s.has_mpc_field());
    CHECK(kept.size() == 7);
}

TEST_CASE("A malformed line ends an AMTP-MPC carrier's continuation")
{
    HeaderScanner s;
    const auto kept = scan(s, {"AMTP-MPC: per/individual", "garbage", " continuation of garbage", ""});
    CHECK(s.carrier_values() == std::vector<std::string>{"per/individual"});
    CHECK(kept == std::vector<std::string>{"garbage", " continuation of garbage", ""});
}

TEST_CASE("A continuation line at the very start is kept")
{
    HeaderScanner s;
    const auto kept = scan(s, {" AMTP-MPC: per/individual", "\tMPC: x", "From: a@a.test", ""});
    CHECK(kept.size() == 4);
    CHECK(s.carrier_values().empty());
    CHECK_FALSE(s.has_mpc_field());
}

TEST_CASE("Binary junk in the header does not crash the scanner")
{
    HeaderScanner s;
    const std::string nul_line("MPC\0: x", 7);
    std::string all_bytes;
    for (int c = 1; c < 256; ++c)
        all_bytes += static_cast<char>(c);
    scan(s, {nul_line, all_bytes, std::string(100000, ':'), "\r\r", "\r", "MPC: after"});
    CHECK_FALSE(s.has_mpc_field());
    CHECK_FALSE(s.in_header());
}
