// Host names as AMTP compares them (profile B2): normalize_host_name,
// is_fully_qualified, client_name_matches, server_name_matches.
#include <catch2/catch.hpp>

#include "amtp/names.hpp"

#include <optional>
#include <string>
#include <vector>

using amtp::client_name_matches;
using amtp::is_fully_qualified;
using amtp::normalize_host_name;
using amtp::server_name_matches;

namespace {

struct NameCase {
    std::string input;
    std::optional<std::string> expected;  // nullopt: refused
    const char* why;
};

std::string label(std::size_t length, char c = 'a')
{
    return std::string(length, c);
}

// 63 + 1 + 63 + 1 + 63 + 1 + (total - 192) octets.
std::string name_of_length(std::size_t total)
{
    return label(63) + "." + label(63, 'b') + "." + label(63, 'c') + "." + label(total - 192, 'd');
}

} // namespace

TEST_CASE("Host names are normalised to lower-case A-labels without the root dot or refused", "[names]")
{
    const std::vector<NameCase> cases = {
        // accepted, and how they come out
        {"mx.a.test", std::string("mx.a.test"), "already canonical"},
        {"MX.A.TEST.", std::string("mx.a.test"), "case folded, one root dot removed"},
        {"Mx.Example.ORG", std::string("mx.example.org"), "mixed case"},
        {"localhost", std::string("localhost"), "one label is syntactically a host name"},
        {"123.test", std::string("123.test"), "digits may start a label (RFC 1123)"},
        {"192.0.2.1", std::string("192.0.2.1"), "LDH-valid; is_fully_qualified refuses it"},
        {"ab--cd.test", std::string("ab--cd.test"), "ASCII names are LDH-checked only, not IDNA-checked"},
        {"xn--bcher-kva.test", std::string("xn--bcher-kva.test"), "A-labels are kept as written"},
        {"bücher.test", std::string("xn--bcher-kva.test"), "U-label converted to its A-label"},
        {"BÜCHER.test", std::string("xn--bcher-kva.test"), "UTS #46 maps upper case before conversion"},
        {"münchen.DE.", std::string("xn--mnchen-3ya.de"), "IDN with a root dot and upper-case ASCII"},
        {"faß.de", std::string("xn--fa-hia.de"), "non-transitional: sharp s is kept, not mapped to ss"},
        {"a\xe3\x80\x82test", std::string("a.test"), "UTS #46 maps the ideographic full stop to a dot"},
        {label(63) + ".test", label(63) + ".test", "a label of 63 octets is the maximum"},
        {name_of_length(253), name_of_length(253), "253 octets is the maximum"},
        {name_of_length(253) + ".", name_of_length(253), "253 octets plus the root dot"},
        // refused
        {"", std::nullopt, "empty"},
        {".", std::nullopt, "the root alone"},
        {"..", std::nullopt, "only one root dot is removed"},
        {"mx.a.test..", std::nullopt, "two trailing dots"},
        {".a.test", std::nullopt, "leading empty label"},
        {"a..b", std::nullopt, "empty label in the middle"},
        {"-a.test", std::nullopt, "label starting with a hyphen"},
        {"a-.test", std::nullopt, "label ending with a hyphen"},
        {"a.test-", std::nullopt, "top-level label ending with a hyphen"},
        {label(64) + ".test", std::nullopt, "a label of 64 octets"},
        {name_of_length(254), std::nullopt, "254 octets"},
        {"exa mple.test", std::nullopt, "space"},
        {"ex\x01.test", std::nullopt, "control character"},
        {"mx.a.test\r\nRCPT", std::nullopt, "CR LF"},
        {std::string("a\0b.test", 8), std::nullopt, "embedded NUL (libidn2 would stop at it)"},
        {"ex\x7f.test", std::nullopt, "DEL"},
        {"under_score.test", std::nullopt, "underscore"},
        {"*.a.test", std::nullopt, "a wildcard is not a host name"},
        {"*", std::nullopt, "a bare wildcard"},
        {"f*.a.test", std::nullopt, "a partial wildcard"},
        {"a\xef\xbc\x8a.test", std::nullopt, "a full-width asterisk maps to '*', still refused"},
        {"[192.0.2.1]", std::nullopt, "an address literal is not a host name"},
        {"mx.a.test:25", std::nullopt, "a port is not part of a name"},
        {"\xff.test", std::nullopt, "not UTF-8"},
        {"b\xc3.test", std::nullopt, "truncated UTF-8 sequence"},
        {"\xe2\x98\x83.test", std::nullopt, "a symbol IDNA2008 disallows (snowman)"},
        {label(60) + "\xc3\xbc.test", std::nullopt, "an IDN label longer than 63 octets once converted"},
    };
    for (const auto& c : cases) {
        const auto got = normalize_host_name(c.input);
        INFO(c.why << ": \"" << c.input << "\" gave " << (got ? "\"" + *got + "\"" : "refusal"));
        CHECK(got == c.expected);
    }
}

TEST_CASE("A fully qualified name has two labels and a non-numeric top-level label", "[names]")
{
    CHECK(is_fully_qualified("mx.a.test"));
    CHECK(is_fully_qualified("a.test"));
    CHECK(is_fully_qualified("a.b1"));
    CHECK(is_fully_qualified("xn--bcher-kva.test"));
    CHECK_FALSE(is_fully_qualified("localhost"));
    CHECK_FALSE(is_fully_qualified("192.0.2.1"));
    CHECK_FALSE(is_fully_qualified("a.123"));
    CHECK_FALSE(is_fully_qualified(""));
    CHECK_FALSE(is_fully_qualified(".test"));
    CHECK_FALSE(is_fully_qualified("a.test."));
}

TEST_CASE("A client's EHLO name must equal one certificate name exactly after normalisation", "[names]")
{
    const std::vector<std::string> names = {"mail.a.test", "mx.a.test"};
    CHECK(client_name_matches(names, "mx.a.test"));
    CHECK(client_name_matches(names, "MX.A.TEST."));
    CHECK(client_name_matches(names, "mail.a.test"));
    CHECK_FALSE(client_name_matches(names, "mx.b.test"));
    CHECK_FALSE(client_name_matches(names, "a.test"));
    CHECK_FALSE(client_name_matches(names, "x.mx.a.test"));
    CHECK_FALSE(client_name_matches(names, ""));
    CHECK_FALSE(client_name_matches(names, "[192.0.2.1]"));
    CHECK_FALSE(client_name_matches({}, "mx.a.test"));
    // Certificate names are normalised too, so an IDN meets its A-label.
    CHECK(client_name_matches({"xn--bcher-kva.test"}, "bücher.test"));
    CHECK(client_name_matches({"Bücher.test"}, "xn--bcher-kva.test"));
}

TEST_CASE("A wildcard certificate name never matches a client's EHLO name", "[names]")
{
    const std::vector<std::string> names = {"*.a.test"};
    CHECK_FALSE(client_name_matches(names, "mx.a.test"));
    CHECK_FALSE(client_name_matches(names, "*.a.test"));
    CHECK_FALSE(client_name_matches(names, "a.test"));
    CHECK_FALSE(client_name_matches({"*"}, "mx"));
    CHECK_FALSE(client_name_matches({"mx*.a.test"}, "mx1.a.test"));
    // A wildcard beside an exact name does not spoil the exact one.
    CHECK(client_name_matches({"*.a.test", "mx.a.test"}, "mx.a.test"));
}

TEST_CASE("A server name matches exactly or by one left-most wildcard label (RFC 6125)", "[names]")
{
    CHECK(server_name_matches({"mx.b.test"}, "mx.b.test"));
    CHECK(server_name_matches({"MX.B.TEST"}, "mx.b.test."));
    CHECK(server_name_matches({"other.test", "mx.b.test"}, "MX.B.test"));
    CHECK_FALSE(server_name_matches({"mx.b.test"}, "mx.c.test"));
    CHECK_FALSE(server_name_matches({}, "mx.b.test"));
    CHECK_FALSE(server_name_matches({"mx.b.test"}, ""));

    const std::vector<std::string> wildcard = {"*.a.test"};
    CHECK(server_name_matches(wildcard, "mx.a.test"));
    CHECK(server_name_matches(wildcard, "MX.A.TEST."));
    CHECK(server_name_matches(wildcard, "xn--bcher-kva.a.test"));
    CHECK(server_name_matches({"*.A.Test"}, "mx.a.test"));
    CHECK_FALSE(server_name_matches(wildcard, "a.test"));       // not the bare parent
    CHECK_FALSE(server_name_matches(wildcard, "x.mx.a.test"));  // exactly one label
    CHECK_FALSE(server_name_matches(wildcard, "mx.b.test"));
    CHECK_FALSE(server_name_matches(wildcard, "*.a.test"));     // the expected name is a host
    CHECK_FALSE(server_name_matches({"*.test"}, "a.test"));     // not a whole top-level domain
    CHECK_FALSE(server_name_matches({"*"}, "test"));
    CHECK_FALSE(server_name_matches({"f*.a.test"}, "foo.a.test"));  // partial wildcards are refused
    CHECK_FALSE(server_name_matches({"mx.*.test"}, "mx.a.test"));
    CHECK_FALSE(server_name_matches({"*.*.test"}, "mx.a.test"));
    CHECK_FALSE(server_name_matches({"*.a..test"}, "mx.a..test"));
}
