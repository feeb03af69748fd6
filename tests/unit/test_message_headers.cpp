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

// ---------------------------------------------------------------- forged Authentication-Results

namespace {

// The lines a writer keeps, released held lines written before the line that freed them.
std::vector<std::string> write_out(HeaderScanner& s, const std::vector<std::string>& lines)
{
    std::vector<std::string> out;
    for (const auto& l : lines) {
        const bool keep = s.line(l);
        for (auto& held : s.take_released())
            out.push_back(std::move(held));
        if (keep)
            out.push_back(l);
    }
    s.finish();
    for (auto& held : s.take_released())
        out.push_back(std::move(held));
    return out;
}

} // namespace

TEST_CASE("Forged Authentication-Results fields claiming our authserv-id are removed (RFC 8601 s5)")
{
    HeaderScanner s("mx.b.test");
    const auto out = write_out(s, {"Authentication-Results: mx.b.test; x-amtp=pass", "Subject: x",
                                   "Authentication-Results: mx.a.test; spf=pass smtp.mailfrom=a.test",
                                   "authentication-results : MX.B.TEST.;", "\tx-amtp=pass policy.mpc=per/individual",
                                   "", "Authentication-Results: mx.b.test; in the body"});
    CHECK(out == std::vector<std::string>{"Subject: x", "Authentication-Results: mx.a.test; spf=pass smtp.mailfrom=a.test",
                                          "", "Authentication-Results: mx.b.test; in the body"});
    CHECK(s.forged_results() == 2);
}

TEST_CASE("Forged Authentication-Results: an authserv-id after a fold, a comment or in quotes is found")
{
    for (const std::vector<std::string>& field :
         {std::vector<std::string>{"Authentication-Results:", "\tmx.b.test; x-amtp=pass"},
          {"Authentication-Results: (a comment", " (nested) still) mx.b.test;", " x-amtp=pass"},
          {"Authentication-Results: \"mx.b\\.test\"; x-amtp=pass"},
          {"Authentication-Results: \"mx.b.", " test\"; x-amtp=pass"}}) {
        INFO(field.front());
        HeaderScanner s("mx.b.test");
        std::vector<std::string> lines{"Subject: x"};
        lines.insert(lines.end(), field.begin(), field.end());
        lines.insert(lines.end(), {"To: b@b.test", "", "body"});
        const auto out = write_out(s, lines);
        // Quoted "mx.b. test" is another id (a blank inside), so that one stays.
        if (field.back() == " test\"; x-amtp=pass") {
            CHECK(s.forged_results() == 0);
            CHECK(out == lines);
        } else {
            CHECK(s.forged_results() == 1);
            CHECK(out == std::vector<std::string>{"Subject: x", "To: b@b.test", "", "body"});
        }
    }
}

TEST_CASE("Forged Authentication-Results: held fields of other authserv-ids come back in place")
{
    HeaderScanner s("mx.b.test");
    const std::vector<std::string> lines{"Authentication-Results:", "\t(comment)", "\tmx.a.test; spf=pass",
                                         "Authentication-Results: (open", "Subject: x", "Authentication-Results:"};
    // The last field ends with the data, still undecided: kept, not ours.
    CHECK(write_out(s, lines) == lines);
    CHECK(s.forged_results() == 0);
}

TEST_CASE("Forged Authentication-Results: a field that ends undecided but names our id is removed")
{
    HeaderScanner s("mx.b.test");
    CHECK(write_out(s, {"Authentication-Results: (open mx.b.test; x-amtp=pass", "Subject: x"}) ==
          std::vector<std::string>{"Subject: x"});
    CHECK(s.forged_results() == 1);
}

TEST_CASE("Forged Authentication-Results: an id hidden past the bound is treated as ours")
{
    HeaderScanner s("mx.b.test");
    std::vector<std::string> lines{"Authentication-Results: (long"};
    for (int i = 0; i < 100; ++i)
        lines.push_back("\t" + std::string(70, 'c'));
    lines.push_back("\t) mx.b.test; x-amtp=pass");
    lines.push_back("Subject: x");
    CHECK(write_out(s, lines) == std::vector<std::string>{"Subject: x"});
    CHECK(s.forged_results() == 1);
}

TEST_CASE("Forged Authentication-Results: without an authserv-id no field is touched")
{
    HeaderScanner s;
    const std::vector<std::string> lines{"Authentication-Results: mx.b.test; x-amtp=pass", "", "b"};
    CHECK(write_out(s, lines) == lines);
    CHECK(s.forged_results() == 0);
}
