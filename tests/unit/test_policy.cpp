// The policy file (profile B6): schema, errors naming line and element, lookups.
#include "amtp/policy.hpp"

#include "amtp/errors.hpp"
#include "support/test_paths.hpp"

#include <catch2/catch.hpp>

#include <cctype>
#include <stdexcept>
#include <string>
#include <vector>

using namespace amtp;

namespace {

const std::string fingerprint = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const std::string full_policy = R"(<?xml version="1.0" encoding="UTF-8"?>
<!-- Example Org's MPC rules -->
<amtp-policy>
  <advertise>
    <deny mpc="*/optout"/>
    <allow mpc="com/individual"/>
  </advertise>
  <domain name="B.Test.">
    <deny mpc="com/*"/>
  </domain>
  <domain name="lists.b.test">
    <allow mpc="*/individual"/>
  </domain>
  <recipient address="Bob@B.test">
    <deny mpc="com/*"/>
    <allow mpc="com/confirmed"/>
  </recipient>
  <recipient address="carol@b.test"/>
  <sender address="Alice@A.test" mpc="PER/Individual"/>
  <sender address="news@a.test" mpc="ngo/confirmed"/>
  <private-network name="office" ca="certs/office-ca.pem">
    <ca file="/etc/amtp/second-ca.pem"/>
    <pin sha256="01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF"
         from="10.8.0.0/16, 2001:db8::/32 192.0.2.7"/>
  </private-network>
  <private-network name="isp">
    <pin sha256="fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210" from="198.51.100.0/24"/>
  </private-network>
</amtp-policy>
)";

MpcValue value(const std::string& text)
{
    const auto parsed = parse_mpc(text);
    REQUIRE(parsed.value);
    return *parsed.value;
}

// The ConfigError a policy text raises; fails the test when it loads.
ConfigError load_error(const std::string& xml)
{
    try {
        Policy::load_string(xml, "policy.xml");
    } catch (const ConfigError& e) {
        return e;
    }
    FAIL("the policy loaded without error:\n" << xml);
    throw std::logic_error("unreachable");
}

// Asserts the error names the file, the line and the element, and says `words`.
void check_error(const std::string& xml, unsigned line, const std::string& element, const std::string& words)
{
    const auto e = load_error(xml);
    INFO("error: " << e.what());
    CHECK(e.file() == "policy.xml");
    CHECK(e.line() == line);
    CHECK(e.key() == element);
    CHECK(e.message().find(words) != std::string::npos);
    const std::string prefix = "policy.xml:" + std::to_string(line) + ": " + element + ": ";
    CHECK(std::string(e.what()).rfind(prefix, 0) == 0);
}

std::string wrap(const std::string& body)
{
    return "<amtp-policy>\n" + body + "</amtp-policy>\n";
}

} // namespace

TEST_CASE("A complete policy file loads")
{
    const auto dir = test::fresh_dir("policy-full");
    const auto path = test::write_file(dir + "/policy.xml", full_policy);
    const auto policy = Policy::load_file(path);

    CHECK(policy.source == path);
    CHECK(policy.advertise.ehlo_line() == "MPC DENY=*/optout ALLOW=com/individual");

    REQUIRE(policy.domains.size() == 2);
    CHECK(policy.domains.at("b.test").ehlo_line() == "MPC DENY=com/*");
    CHECK(policy.domains.at("lists.b.test").ehlo_line() == "MPC ALLOW=*/individual");

    REQUIRE(policy.recipients.size() == 2);
    CHECK(policy.recipients.at("bob@b.test").ehlo_line() == "MPC DENY=com/* ALLOW=com/confirmed");
    CHECK(policy.recipients.at("carol@b.test").empty());

    REQUIRE(policy.senders.size() == 2);
    CHECK(policy.senders.at("alice@a.test") == MpcValue{"per", "individual"});
    CHECK(policy.senders.at("news@a.test") == MpcValue{"ngo", "confirmed"});

    REQUIRE(policy.private_networks.size() == 2);
    const auto& office = policy.private_networks[0];
    CHECK(office.name == "office");
    REQUIRE(office.ca_files.size() == 2);
    CHECK(office.ca_files[0] == dir + "/certs/office-ca.pem");
    CHECK(office.ca_files[1] == "/etc/amtp/second-ca.pem");
    REQUIRE(office.pins.size() == 1);
    CHECK(office.pins[0].sha256 == fingerprint);
    REQUIRE(office.pins[0].from.size() == 3);
    CHECK(office.pins[0].from[0].str() == "10.8.0.0/16");
    CHECK(office.pins[0].from[1].str() == "2001:db8::/32");
    CHECK(office.pins[0].from[2].str() == "192.0.2.7/32");
    CHECK(office.pins[0].from[0].contains(*IpAddress::parse("10.8.200.1")));

    const auto& isp = policy.private_networks[1];
    CHECK(isp.name == "isp");
    CHECK(isp.ca_files.empty());
    REQUIRE(isp.pins.size() == 1);
    CHECK(isp.pins[0].sha256 == "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210");
}

TEST_CASE("An empty policy has no rules and allows everything")
{
    const auto policy = Policy::load_string("<amtp-policy/>", "empty.xml");
    CHECK(policy.advertise.empty());
    CHECK(policy.advertise.ehlo_line().empty());
    CHECK(policy.rules_for("bob@b.test") == nullptr);
    CHECK(policy.recipient_allows("bob@b.test", value("com/optout")));
    CHECK_FALSE(policy.sender_mpc("alice@a.test"));
}

TEST_CASE("Relative CA paths resolve against the policy file's directory")
{
    const std::string xml = wrap(R"(<private-network name="n" ca="ca.pem"><ca file="../up/ca2.pem"/>
<ca file="/abs/ca3.pem"/></private-network>
)");
    auto policy = Policy::load_string(xml, "/etc/amtp/policy.xml");
    REQUIRE(policy.private_networks.size() == 1);
    CHECK(policy.private_networks[0].ca_files ==
          std::vector<std::string>{"/etc/amtp/ca.pem", "/etc/up/ca2.pem", "/abs/ca3.pem"});
    // A policy named without a directory: paths stay relative to the same directory.
    policy = Policy::load_string(xml, "policy.xml");
    CHECK(policy.private_networks[0].ca_files[0] == "ca.pem");
}

TEST_CASE("CA files are not opened while loading the policy")
{
    const auto policy =
        Policy::load_string(wrap("<private-network name=\"n\" ca=\"/nonexistent/ca.pem\"/>\n"), "/p/policy.xml");
    CHECK(policy.private_networks.at(0).ca_files.at(0) == "/nonexistent/ca.pem");
}

TEST_CASE("Recipient rules override domain rules")
{
    const auto policy = Policy::load_string(full_policy, "policy.xml");
    // Domain: no commercial mail at all.
    CHECK_FALSE(policy.recipient_allows("dave@b.test", value("com/confirmed")));
    CHECK_FALSE(policy.recipient_allows("dave@b.test", value("com/individual")));
    CHECK(policy.recipient_allows("dave@b.test", value("per/optout")));
    // Bob's own list replaces the domain's: confirmed commercial mail is allowed.
    CHECK(policy.recipient_allows("bob@b.test", value("com/confirmed")));
    CHECK_FALSE(policy.recipient_allows("bob@b.test", value("com/optin")));
    // Carol's empty list allows everything, domain DENY notwithstanding.
    CHECK(policy.recipient_allows("carol@b.test", value("com/optout")));
    REQUIRE(policy.rules_for("carol@b.test") != nullptr);
    CHECK(policy.rules_for("carol@b.test")->empty());
    // The rules do not combine: rules_for returns exactly one list.
    CHECK(policy.rules_for("bob@b.test") == &policy.recipients.at("bob@b.test"));
    CHECK(policy.rules_for("dave@b.test") == &policy.domains.at("b.test"));
}

TEST_CASE("Domain rules apply to their exact domain only")
{
    const auto policy = Policy::load_string(full_policy, "policy.xml");
    CHECK(policy.rules_for("x@lists.b.test") == &policy.domains.at("lists.b.test"));
    CHECK_FALSE(policy.recipient_allows("x@lists.b.test", value("per/optin")));
    CHECK(policy.rules_for("x@other.b.test") == nullptr);
    CHECK(policy.rules_for("x@c.test") == nullptr);
    CHECK(policy.recipient_allows("x@c.test", value("com/optout")));
    CHECK(policy.rules_for("postmaster") == nullptr);
    CHECK(policy.rules_for("") == nullptr);
}

TEST_CASE("mpc/individual reaches every recipient whatever the rules")
{
    const auto policy = Policy::load_string(
        wrap("<domain name=\"b.test\"><deny mpc=\"*/*\"/></domain>\n"
             "<recipient address=\"x@b.test\"><deny mpc=\"mpc/*\"/></recipient>\n"),
        "policy.xml");
    CHECK(policy.recipient_allows("y@b.test", value("mpc/individual")));
    CHECK(policy.recipient_allows("x@b.test", value("mpc/individual")));
    CHECK_FALSE(policy.recipient_allows("y@b.test", value("per/individual")));
}

TEST_CASE("Recipient and sender lookups are case-insensitive")
{
    const auto policy = Policy::load_string(full_policy, "policy.xml");
    CHECK(policy.rules_for("BOB@B.TEST") == &policy.recipients.at("bob@b.test"));
    CHECK(policy.rules_for("Bob@b.test.") == &policy.recipients.at("bob@b.test"));
    CHECK(policy.rules_for("Dave@B.Test") == &policy.domains.at("b.test"));
    CHECK(policy.sender_mpc("ALICE@a.TEST") == MpcValue{"per", "individual"});
}

TEST_CASE("Sender lookup returns the MPC value bound to the address")
{
    const auto policy = Policy::load_string(full_policy, "policy.xml");
    CHECK(policy.sender_mpc("alice@a.test") == MpcValue{"per", "individual"});
    CHECK(policy.sender_mpc("news@a.test") == MpcValue{"ngo", "confirmed"});
    CHECK_FALSE(policy.sender_mpc("bob@a.test"));
    CHECK_FALSE(policy.sender_mpc("alice@b.test"));
    CHECK_FALSE(policy.sender_mpc(""));
}

TEST_CASE("Malformed XML is reported with its line")
{
    SECTION("mismatched end tag")
    {
        const auto e = load_error("<amtp-policy>\n  <advertise>\n    <deny mpc=\"*/optout\">\n  </advertise>\n"
                                  "</amtp-policy>\n");
        INFO(e.what());
        CHECK(e.line() == 4);
        CHECK(e.message().find("mismatch") != std::string::npos);
        CHECK(std::string(e.what()).rfind("policy.xml:4: ", 0) == 0);
    }
    SECTION("unterminated attribute value")
    {
        const auto e = load_error("<amtp-policy>\n\n  <domain name=\"b.test>\n  </domain>\n</amtp-policy>\n");
        INFO(e.what());
        CHECK(e.line() == 3);
        CHECK(std::string(e.what()).rfind("policy.xml:", 0) == 0);
    }
    SECTION("unclosed root")
    {
        const auto e = load_error("<amtp-policy>\n<advertise/>\n");
        INFO(e.what());
        CHECK(e.line() >= 2);
    }
    SECTION("no element at all")
    {
        const auto e = load_error("");
        INFO(e.what());
        CHECK(e.message().find("No document element") != std::string::npos);
    }
}

TEST_CASE("Line numbers are right in a file with CRLF line ends")
{
    check_error("<amtp-policy>\r\n<!-- a\r\ncomment -->\r\n<advertise>\r\n<deny mpc=\"com/bulk\"/>\r\n"
                "</advertise>\r\n</amtp-policy>\r\n",
                5, "<deny>", "undefined class \"bulk\"");
}

TEST_CASE("A UTF-8 byte order mark and non-ASCII comments do not shift line numbers")
{
    check_error("\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- R\xc3\xa8gles -->\n<amtp-policy>\n"
                "<sender address=\"a@a.test\" mpc=\"per/x\"/>\n</amtp-policy>\n",
                4, "<sender>", "undefined class \"x\"");
}

TEST_CASE("The root element must be amtp-policy")
{
    check_error("<?xml version=\"1.0\"?>\n<policy/>\n", 2, "<policy>", "root element must be <amtp-policy>");
    check_error("<amtp-policy version=\"1\"/>", 1, "<amtp-policy>", "unknown attribute \"version\"");
}

TEST_CASE("An unknown element is an error naming its line and element")
{
    check_error(wrap("<advertise/>\n<domian name=\"b.test\"/>\n"), 3, "<domian>", "unknown element");
    check_error(wrap("<advertise>\n<alow mpc=\"*/*\"/>\n</advertise>\n"), 3, "<alow>",
                "expected <allow> or <deny>");
    check_error(wrap("<domain name=\"b.test\">\n\n<permit mpc=\"*/*\"/></domain>\n"), 4, "<permit>", "unknown element");
    check_error(wrap("<private-network name=\"n\" ca=\"c\">\n<cert file=\"x\"/>\n</private-network>\n"), 3,
                "<cert>", "expected <ca> or <pin>");
    check_error(wrap("<deny mpc=\"*/*\"/>\n"), 2, "<deny>", "must be inside <advertise>");
    check_error(wrap("<advertise><deny mpc=\"*/*\"><allow mpc=\"*/*\"/></deny></advertise>\n"), 2, "<allow>",
                "takes no elements");
    check_error(wrap("<sender address=\"a@a.test\" mpc=\"per/individual\">\n<deny mpc=\"*/*\"/></sender>\n"), 3,
                "<deny>", "takes no elements");
}

TEST_CASE("An unknown attribute is an error naming its line and element")
{
    check_error(wrap("<domain nam=\"b.test\"/>\n"), 2, "<domain>", "unknown attribute \"nam\" (expected name)");
    check_error(wrap("\n<advertise>\n<deny mpc=\"*/*\" reason=\"spam\"/>\n</advertise>\n"), 4, "<deny>",
                "unknown attribute \"reason\"");
    check_error(wrap("<advertise order=\"1\"/>\n"), 2, "<advertise>", "unknown attribute \"order\" (it takes none)");
    check_error(wrap("<sender address=\"a@a.test\" mcp=\"per/individual\"/>\n"), 2, "<sender>",
                "unknown attribute \"mcp\"");
    check_error(wrap("<private-network name=\"n\" ca=\"c\">\n<pin sha=\"" + fingerprint + "\"/>\n</private-network>\n"),
                3, "<pin>", "unknown attribute \"sha\"");
}

TEST_CASE("A repeated attribute is an error")
{
    check_error(wrap("<advertise>\n<deny mpc=\"*/*\" mpc=\"com/*\"/>\n</advertise>\n"), 3, "<deny>", "given twice");
}

TEST_CASE("Text inside the policy is an error")
{
    check_error(wrap("<advertise>\ndeny */optout\n</advertise>\n"), 3, "<advertise>", "unexpected text");
    check_error(wrap("<advertise><deny mpc=\"*/*\">x</deny></advertise>\n"), 2, "<deny>", "unexpected text");
}

TEST_CASE("A bad mpc pattern in deny is reported with its line and value")
{
    check_error(wrap("<advertise>\n  <allow mpc=\"*/individual\"/>\n  <deny mpc=\"com/opt-out\"/>\n</advertise>\n"),
                4, "<deny>", "mpc=\"com/opt-out\": undefined class \"opt-out\"");
    check_error(wrap("<domain name=\"b.test\">\n<deny mpc=\"comm/*\"/>\n</domain>\n"), 3, "<deny>",
                "mpc=\"comm/*\": undefined role \"comm\"");
    check_error(wrap("<recipient address=\"b@b.test\">\n<allow mpc=\"com\"/>\n</recipient>\n"), 3, "<allow>",
                "mpc=\"com\": no \"/\" between role and class");
    check_error(wrap("<advertise><deny mpc=\"mpc/optout\"/></advertise>\n"), 2, "<deny>",
                "defined only as mpc/individual");
    check_error(wrap("<advertise><deny mpc=\" com/*\"/></advertise>\n"), 2, "<deny>", "must start with a letter");
}

TEST_CASE("A sender's mpc must be one defined value, not a pattern")
{
    check_error(wrap("<sender address=\"a@a.test\" mpc=\"per/*\"/>\n"), 2, "<sender>", "is a pattern, not a value");
    check_error(wrap("<sender address=\"a@a.test\" mpc=\"per/bulk\"/>\n"), 2, "<sender>", "undefined class \"bulk\"");
    check_error(wrap("<sender address=\"a@a.test\"/>\n"), 2, "<sender>", "missing attribute \"mpc\"");
}

TEST_CASE("A missing or empty required attribute is an error")
{
    check_error(wrap("<advertise>\n<deny/>\n</advertise>\n"), 3, "<deny>", "missing attribute \"mpc\"");
    check_error(wrap("<advertise>\n<allow mpc=\"\"/>\n</advertise>\n"), 3, "<allow>", "empty attribute \"mpc\"");
    check_error(wrap("<domain>\n</domain>\n"), 2, "<domain>", "missing attribute \"name\"");
    check_error(wrap("<recipient/>\n"), 2, "<recipient>", "missing attribute \"address\"");
    check_error(wrap("<sender mpc=\"per/individual\"/>\n"), 2, "<sender>", "missing attribute \"address\"");
    check_error(wrap("<private-network ca=\"c\"/>\n"), 2, "<private-network>", "missing attribute \"name\"");
    check_error(wrap("<private-network name=\"n\">\n<pin from=\"10.0.0.0/8\"/>\n</private-network>\n"), 3, "<pin>",
                "missing attribute \"sha256\"");
    check_error(wrap("<private-network name=\"n\">\n<pin sha256=\"" + fingerprint + "\"/>\n</private-network>\n"), 3,
                "<pin>", "missing attribute \"from\"");
    check_error(wrap("<private-network name=\"n\">\n<ca/>\n</private-network>\n"), 3, "<ca>",
                "missing attribute \"file\"");
}

TEST_CASE("A duplicate recipient is an error naming both lines")
{
    check_error(wrap("<recipient address=\"bob@b.test\"/>\n\n<recipient address=\"BOB@b.test.\"/>\n"), 4, "<recipient>",
                "duplicate recipient \"bob@b.test\" (first on line 2)");
}

TEST_CASE("A duplicate domain, sender or private network is an error")
{
    check_error(wrap("<domain name=\"b.test\"/>\n<domain name=\"B.TEST.\"/>\n"), 3, "<domain>",
                "duplicate domain \"b.test\" (first on line 2)");
    check_error(wrap("<sender address=\"a@a.test\" mpc=\"per/individual\"/>\n"
                     "<sender address=\"A@A.test\" mpc=\"com/individual\"/>\n"),
                3, "<sender>", "duplicate sender \"a@a.test\"");
    check_error(wrap("<private-network name=\"office\" ca=\"a\"/>\n<private-network name=\"Office\" ca=\"b\"/>\n"), 3,
                "<private-network>", "duplicate private network");
}

TEST_CASE("At most one advertise element")
{
    check_error(wrap("<advertise/>\n<advertise/>\n"), 3, "<advertise>", "only one <advertise> is allowed (first on line 2)");
}

TEST_CASE("Domain names must be host names")
{
    for (const std::string& bad : std::vector<std::string>{"b..test", ".b.test", "-b.test", "b-.test", "b_c.test", "b test", "*.b.test",
                                  "b.test..", "[192.0.2.1]", std::string(64, 'a') + ".test"}) {
        INFO("name: " << bad);
        check_error(wrap("<domain name=\"" + bad + "\"/>\n"), 2, "<domain>", "not a host name");
    }
    check_error(wrap("<domain name=\"b\xc3\xbc" "cher.test\"/>\n"), 2, "<domain>", "A-label");
    const auto policy = Policy::load_string(wrap("<domain name=\"xn--bcher-kva.test\"/><domain name=\"localhost\"/>\n"),
                                            "policy.xml");
    CHECK(policy.domains.count("xn--bcher-kva.test") == 1);
}

TEST_CASE("Addresses must be local-part@domain")
{
    for (const std::string bad : {"bob", "@b.test", "bob@", "bob@b..test", "b ob@b.test", "bob@b.test@"}) {
        INFO("address: " << bad);
        const auto e = load_error(wrap("<recipient address=\"" + bad + "\"/>\n"));
        CHECK(e.line() == 2);
        CHECK(e.key() == "<recipient>");
    }
    // The last "@" splits: a quoted local part may hold one.
    const auto policy = Policy::load_string(wrap("<recipient address=\"&quot;a@b&quot;@B.test\"/>\n"), "policy.xml");
    CHECK(policy.recipients.count("\"a@b\"@b.test") == 1);
}

TEST_CASE("A pin's sha256 must be 64 hex digits, colon pairs accepted and normalised")
{
    auto pin = [](const std::string& sha) {
        return wrap("<private-network name=\"n\">\n<pin sha256=\"" + sha + "\" from=\"10.0.0.0/8\"/>\n</private-network>\n");
    };
    for (const std::string& bad : std::vector<std::string>{fingerprint.substr(1), fingerprint + "0", "g" + fingerprint.substr(1),
                                  std::string("01:23") + std::string(91, '0'), "01:23:45",
                                  "0:123:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef",
                                  "sha256:" + fingerprint, fingerprint.substr(0, 32) + " " + fingerprint.substr(32)}) {
        INFO("sha256: " << bad);
        check_error(pin(bad), 3, "<pin>", "not a SHA-256 fingerprint");
    }
    std::string upper = fingerprint;
    for (auto& c : upper)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const auto policy = Policy::load_string(pin(upper), "policy.xml");
    CHECK(policy.private_networks.at(0).pins.at(0).sha256 == fingerprint);
}

TEST_CASE("The same pinned certificate may not appear twice")
{
    check_error(wrap("<private-network name=\"a\"><pin sha256=\"" + fingerprint + "\" from=\"10.0.0.0/8\"/></private-network>\n"
                     "<private-network name=\"b\">\n<pin sha256=\"" + fingerprint + "\" from=\"10.0.0.0/8\"/></private-network>\n"),
                4, "<pin>", "duplicate pin");
}

TEST_CASE("A bad network in a pin's from is an error")
{
    auto pin = [](const std::string& from) {
        return wrap("<private-network name=\"n\">\n<pin sha256=\"" + fingerprint + "\" from=\"" + from +
                    "\"/>\n</private-network>\n");
    };
    check_error(pin("10.8.0.0/16, 10.9.0.0/33"), 3, "<pin>", "\"10.9.0.0/33\" is not an IP network");
    check_error(pin("10.8.0.0/16;10.9.0.0/16"), 3, "<pin>", "is not an IP network");
    check_error(pin("office-lan"), 3, "<pin>", "\"office-lan\" is not an IP network");
    check_error(pin("2001:db8::/129"), 3, "<pin>", "is not an IP network");
    check_error(pin(" , "), 3, "<pin>", "no network listed");
    const auto policy = Policy::load_string(pin(" 10.8.0.0/16,,::1\t192.0.2.0/24 "), "policy.xml");
    CHECK(policy.private_networks.at(0).pins.at(0).from.size() == 3);
}

TEST_CASE("A private network needs a usable name and something to trust")
{
    check_error(wrap("<private-network name=\"office\"/>\n"), 2, "<private-network>", "needs a CA");
    check_error(wrap("<private-network name=\"my office\" ca=\"c\"/>\n"), 2, "<private-network>", "name=\"my office\"");
    check_error(wrap("<private-network name=\"n\" ca=\"\"/>\n"), 2, "<private-network>", "empty attribute \"ca\"");
}

TEST_CASE("An unreadable policy file is an error naming the file")
{
    const auto dir = test::fresh_dir("policy-missing");
    try {
        Policy::load_file(dir + "/absent.xml");
        FAIL("loaded a file that does not exist");
    } catch (const ConfigError& e) {
        CHECK(e.file() == dir + "/absent.xml");
        CHECK(e.message().find("cannot open") != std::string::npos);
    }
}

TEST_CASE("Errors from a file carry the file's path")
{
    const auto dir = test::fresh_dir("policy-error");
    const auto path = test::write_file(dir + "/policy.xml", wrap("<advertise>\n<deny mpc=\"x/y\"/>\n</advertise>\n"));
    try {
        Policy::load_file(path);
        FAIL("loaded a bad policy");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()).rfind(path + ":3: <deny>: mpc=\"x/y\": undefined role", 0) == 0);
    }
}
