// The settings file (profile B8): one option table, read from an INI file with
// Boost.Program_options, every error naming file, line and key; the documentation and
// amtp-config come from the same table.
#include "amtp/errors.hpp"
#include "amtp/settings.hpp"
#include "support/test_paths.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

using amtp::ConfigError;
using amtp::Settings;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

Settings load(const std::string& text, const std::string& source = "amtpd.ini")
{
    return amtp::load_settings_string(text, source);
}

ConfigError error_of(const std::string& text, const std::string& source = "amtpd.ini")
{
    try {
        load(text, source);
    } catch (const ConfigError& e) {
        return e;
    }
    FAIL("no ConfigError for:\n" << text);
    throw std::logic_error("unreachable");
}

// A file that sets `name` to `value`, and the line it lands on.
struct Placed {
    std::string text;
    unsigned line;
};

Placed place(const std::string& name, const std::string& value)
{
    const auto dot = name.find('.');
    if (name == "hostname")
        return {"hostname = " + value + "\n", 1};
    if (dot == std::string::npos)
        return {"hostname = b.test\n" + name + " = " + value + "\n", 2};
    return {"hostname = b.test\n[" + name.substr(0, dot) + "]\n" + name.substr(dot + 1) + " = " + value + "\n", 3};
}

Settings accepted(const std::string& name, const std::string& value)
{
    INFO(name << " = " << value);
    return load(place(name, value).text);
}

struct Refusal {
    std::string value;
    std::string message;
};

// Each bad value must be refused with the key, its line and exactly this message.
void check_refusals(const std::string& name, const std::vector<Refusal>& refusals)
{
    for (const auto& [value, message] : refusals) {
        INFO(name << " = " << value);
        const auto placed = place(name, value);
        const auto e = error_of(placed.text);
        CHECK(e.file() == "amtpd.ini");
        CHECK(e.line() == placed.line);
        CHECK(e.key() == name);
        CHECK(e.message() == message);
        CHECK(std::string(e.what()) ==
              "amtpd.ini:" + std::to_string(placed.line) + ": " + name + ": " + message);
    }
}

// "section.key" of every key line, set or commented out ("# key = ..."), in a file.
std::set<std::string> mentioned_options(const std::string& text)
{
    std::set<std::string> out;
    std::istringstream in(text);
    std::string line;
    std::string section;
    while (std::getline(in, line)) {
        if (line.size() > 2 && line.front() == '[' && line.back() == ']') {
            section = line.substr(1, line.size() - 2);
            continue;
        }
        auto start = line.find_first_not_of("# ");
        const auto equals = line.find(" = ");
        if (start == std::string::npos || equals == std::string::npos || equals < start)
            continue;
        const auto key = line.substr(start, equals - start);
        if (key.find(' ') == std::string::npos)
            out.insert(section.empty() ? key : section + "." + key);
    }
    return out;
}

fs::path amtp_config_binary()
{
    // AMTP_TEST_WORK_DIR is <build>/test-work; programs are built into <build>/bin.
    return fs::path(AMTP_TEST_WORK_DIR).parent_path() / "bin" / "amtp-config";
}

const char* const full_file = R"(# every option, none at its default
hostname = MX.B.Test.
user = amtp

[listen]
public = 127.0.0.3:2626
public = [::1]:2626
private = 127.0.0.3:2687
starttls = yes
header-carrier = off

[tls]
certificate = chain.pem
key = /etc/amtp/key.pem
trusted-ca = ca.pem
trusted-ca = ca2.pem
private-ca = private-ca.pem
crl = crl.pem
require-client-eku = on
min-version = 1.3
ticket-keys = ticket.keys

[dns]
resolver = 127.0.0.1@15353
forward-confirm = true
timeout = 1500ms
trust-anchor = root.key
nodefault-zone = test.
nodefault-zone = 127.in-addr.arpa

[delivery]
local-domain = B.test
local-domain = bücher.test
maildir-root = /srv/mail
lmtp = unix:/run/lmtp
recipients = file:users.txt

[policy]
file = policy.xml

[client]
source = 127.0.0.2
port = 2626

[queue]
directory = spool
retry-schedule = 1m, 10m, 1h
max-age = 2d
attempt-timeout = 30m

[limits]
max-message-size = 50M
max-recipients = 500
command-timeout = 2m
data-timeout = 3m
max-errors = 5
max-connections = 200
max-connections-per-ip = 5
ipv6-prefix-length = 56
)";

} // namespace

TEST_CASE("A complete settings file sets every option", "[settings]")
{
    const auto dir = amtp::test::fresh_dir("settings-full");
    const auto s = amtp::load_settings(amtp::test::write_file(dir + "/amtpd.ini", full_file));
    const auto in_dir = [&](const std::string& name) { return (fs::path(dir) / name).string(); };

    CHECK(s.source == dir + "/amtpd.ini");
    CHECK(s.hostname == "mx.b.test");
    CHECK(s.user == "amtp");
    REQUIRE(s.listen.public_endpoints.size() == 2);
    CHECK(s.listen.public_endpoints[0].str() == "127.0.0.3:2626");
    CHECK(s.listen.public_endpoints[1].str() == "[::1]:2626");
    REQUIRE(s.listen.private_endpoints.size() == 1);
    CHECK(s.listen.private_endpoints[0].port == 2687);
    CHECK(s.listen.starttls);
    CHECK_FALSE(s.listen.header_carrier);

    CHECK(s.tls.certificate == in_dir("chain.pem"));
    CHECK(s.tls.key == "/etc/amtp/key.pem");
    CHECK(s.tls.trusted_ca == std::vector<std::string>{in_dir("ca.pem"), in_dir("ca2.pem")});
    CHECK(s.tls.private_ca == std::vector<std::string>{in_dir("private-ca.pem")});
    CHECK(s.tls.crl == in_dir("crl.pem"));
    CHECK(s.tls.require_client_eku);
    CHECK(s.tls.min_version == "1.3");
    CHECK(s.tls.ticket_keys == in_dir("ticket.keys"));

    CHECK(s.dns.resolver == "127.0.0.1@15353");
    CHECK(s.dns.forward_confirm);
    CHECK(s.dns.timeout == 1500ms);
    CHECK(s.dns.trust_anchor == in_dir("root.key"));
    CHECK(s.dns.nodefault_zones == std::vector<std::string>{"test.", "127.in-addr.arpa."});

    CHECK(s.delivery.local_domains == std::vector<std::string>{"b.test", "xn--bcher-kva.test"});
    CHECK(s.delivery.maildir_root == "/srv/mail");
    CHECK(s.delivery.lmtp == "unix:/run/lmtp");
    CHECK(s.delivery.recipients == "file:" + in_dir("users.txt"));
    CHECK(s.policy.file == in_dir("policy.xml"));
    CHECK(s.client.source == "127.0.0.2");
    CHECK(s.client.port == 2626);

    CHECK(s.queue.directory == in_dir("spool"));
    CHECK(s.queue.retry_schedule == std::vector<std::chrono::seconds>{60s, 600s, 3600s});
    CHECK(s.queue.max_age == 48h);
    CHECK(s.queue.attempt_timeout == 30min);

    CHECK(s.limits.max_message_size == 50u * 1024 * 1024);
    CHECK(s.limits.max_recipients == 500);
    CHECK(s.limits.command_timeout == 120s);
    CHECK(s.limits.data_timeout == 180s);
    CHECK(s.limits.max_errors == 5);
    CHECK(s.limits.max_connections == 200);
    CHECK(s.limits.max_connections_per_ip == 5);
    CHECK(s.limits.ipv6_prefix_length == 56);

    // The test above really covers the whole table.
    const auto mentioned = mentioned_options(full_file);
    for (const auto& option : amtp::option_table())
        CHECK(mentioned.count(option.name) == 1);
}

TEST_CASE("Absent options take the table's defaults, and settings.hpp agrees with the table", "[settings]")
{
    const auto s = load("hostname = b.test\n");
    CHECK(s.listen.public_endpoints.empty()); // a listener is not required (amtp-send)
    CHECK(s.listen.private_endpoints.empty());
    CHECK_FALSE(s.listen.starttls);
    CHECK(s.listen.header_carrier);
    CHECK(s.tls.certificate.empty());
    CHECK(s.tls.trusted_ca.empty());
    CHECK_FALSE(s.tls.require_client_eku);
    CHECK(s.tls.min_version == "1.2");
    CHECK(s.tls.ticket_keys.empty());
    CHECK(s.dns.resolver.empty());
    CHECK_FALSE(s.dns.forward_confirm);
    CHECK(s.dns.timeout == 5s);
    CHECK(s.delivery.maildir_root == "/var/mail/amtp");
    CHECK(s.delivery.lmtp.empty());
    CHECK(s.delivery.recipients == "mailbox");
    CHECK(s.policy.file.empty());
    CHECK(s.client.source.empty());
    CHECK(s.client.port == 26);
    CHECK(s.queue.directory == "/var/spool/amtp");
    CHECK(s.queue.retry_schedule == std::vector<std::chrono::seconds>{5min, 15min, 30min, 1h, 2h, 4h});
    CHECK(s.queue.max_age == 120h);
    CHECK(s.queue.attempt_timeout == 15min);
    CHECK(s.limits.max_message_size == 25u * 1024 * 1024);
    CHECK(s.limits.max_recipients == 100);
    CHECK(s.limits.command_timeout == 5min);
    CHECK(s.limits.data_timeout == 10min);
    CHECK(s.limits.max_errors == 10);
    CHECK(s.limits.max_connections == 1000);
    CHECK(s.limits.max_connections_per_ip == 20);
    CHECK(s.limits.ipv6_prefix_length == 64);
    CHECK(s.user.empty());

    // A default-constructed Settings is what a file with only a hostname gives.
    Settings constructed;
    constructed.hostname = "b.test";
    CHECK(amtp::describe_settings(constructed) == amtp::describe_settings(s));
}

TEST_CASE("Every default in the table is written as the settings print it back", "[settings]")
{
    const auto described = amtp::describe_settings(load("hostname = b.test\n"));
    for (const auto& option : amtp::option_table()) {
        if (!*option.default_value)
            continue;
        INFO(option.name);
        CHECK(described.find(std::string(option.name) + " = " + option.default_value + "\n") != std::string::npos);
    }
}

TEST_CASE("The option table names each option once, with a type and help; required and repeatable keys have no "
          "default",
          "[settings]")
{
    std::set<std::string> names;
    for (const auto& option : amtp::option_table()) {
        INFO(option.name);
        CHECK(names.insert(option.name).second);
        CHECK(*option.type);
        CHECK(std::string(option.help).size() > 20);
        if (option.required || option.repeatable)
            CHECK(std::string(option.default_value).empty());
    }
    // Names other front-ends and outside tests depend on.
    for (const char* fixed :
         {"hostname", "user", "listen.public", "listen.private", "listen.starttls", "listen.header-carrier", "tls.certificate", "tls.key",
          "tls.trusted-ca", "tls.private-ca", "tls.crl", "tls.require-client-eku", "tls.min-version", "tls.ticket-keys", "dns.resolver",
          "dns.forward-confirm", "dns.timeout", "dns.trust-anchor", "dns.nodefault-zone", "delivery.local-domain",
          "delivery.maildir-root", "delivery.lmtp", "delivery.recipients", "policy.file", "client.source", "client.port", "queue.directory",
          "queue.retry-schedule", "queue.max-age", "limits.max-message-size", "limits.max-recipients",
          "limits.command-timeout", "limits.data-timeout", "limits.max-errors", "limits.max-connections",
          "limits.max-connections-per-ip", "limits.ipv6-prefix-length", "queue.attempt-timeout"})
        CHECK(names.count(fixed) == 1);
    CHECK(names.size() == 38);
}

TEST_CASE("Sizes are numbers of bytes with binary K, M or G suffixes", "[settings]")
{
    const auto size = [](const char* v) { return accepted("limits.max-message-size", v).limits.max_message_size; };
    CHECK(size("1") == 1);
    CHECK(size("1k") == 1024);
    CHECK(size("0025M") == 25u * 1024 * 1024);
    CHECK(size("2G") == 2ull << 30);
    CHECK(size("1024G") == 1ull << 40);
}

TEST_CASE("A bad size is refused with its line and a precise message", "[settings]")
{
    const auto bad = [](const std::string& v) { return Refusal{v, "\"" + v + "\" is not a size (use a number with K, M or G)"}; };
    const auto range = [](const std::string& v) {
        return Refusal{v, "\"" + v + "\" is out of range (use a size from 1 to 1024G)"};
    };
    check_refusals("limits.max-message-size",
                   {{"", "no value given (use a number with K, M or G)"},
                    {"  ", "no value given (use a number with K, M or G)"},
                    bad("25Q"), bad("5x"), bad("25 M"), bad("M"), bad("1.5M"), bad("+5M"), bad("0x10"), bad("25MB"),
                    bad("２５M"), bad("25Ｍ"), range("-1"), range("0"), range("1025G"), range("17179869184G"),
                    range("99999999999999999999G"), range("99999999999999999999")});
}

TEST_CASE("Durations take s, m, h or d, and a bare number is seconds", "[settings]")
{
    const auto timeout = [](const char* v) { return accepted("limits.command-timeout", v).limits.command_timeout; };
    CHECK(timeout("30") == 30s);
    CHECK(timeout("30s") == 30s);
    CHECK(timeout("5m") == 5min);
    CHECK(timeout("5M") == 5min);
    CHECK(timeout("1h") == 1h);
    CHECK(timeout("1d") == 24h);
    CHECK(accepted("queue.max-age", "365d").queue.max_age == 365 * 24h);
}

TEST_CASE("A bad duration is refused with its line and a precise message", "[settings]")
{
    check_refusals("limits.command-timeout",
                   {{"", "no value given (use a number with s, m, h or d)"},
                    {"  ", "no value given (use a number with s, m, h or d)"},
                    {"5x", "\"5x\" is not a duration (use a number with s, m, h or d)"},
                    {"500ms", "\"500ms\" is not a duration (use a number with s, m, h or d)"},
                    {"5 m", "\"5 m\" is not a duration (use a number with s, m, h or d)"},
                    {"1.5h", "\"1.5h\" is not a duration (use a number with s, m, h or d)"},
                    {"5秒", "\"5秒\" is not a duration (use a number with s, m, h or d)"},
                    {"-5m", "\"-5m\" is out of range (use a duration from 1s to 1d)"},
                    {"0", "\"0\" is out of range (use a duration from 1s to 1d)"},
                    {"2d", "\"2d\" is out of range (use a duration from 1s to 1d)"},
                    {"99999999999999999999d", "\"99999999999999999999d\" is out of range (use a duration from 1s "
                                              "to 1d)"}});
    check_refusals("queue.max-age", {{"366d", "\"366d\" is out of range (use a duration from 1s to 365d)"}});
}

TEST_CASE("dns.timeout also takes milliseconds", "[settings]")
{
    CHECK(accepted("dns.timeout", "500ms").dns.timeout == 500ms);
    CHECK(accepted("dns.timeout", "5").dns.timeout == 5s);
    CHECK(accepted("dns.timeout", "2s").dns.timeout == 2s);
    CHECK(amtp::describe_settings(accepted("dns.timeout", "1500ms")).find("dns.timeout = 1500ms\n") !=
          std::string::npos);
    check_refusals("dns.timeout", {{"", "no value given (use a number with ms, s, m, h or d)"},
                                   {"5x", "\"5x\" is not a duration (use a number with ms, s, m, h or d)"},
                                   {"0ms", "\"0ms\" is out of range (use a duration from 1ms to 1h)"},
                                   {"2h", "\"2h\" is out of range (use a duration from 1ms to 1h)"}});
}

TEST_CASE("The retry schedule is a comma-separated list of durations, each checked", "[settings]")
{
    CHECK(accepted("queue.retry-schedule", "1m, 10m ,1h").queue.retry_schedule ==
          std::vector<std::chrono::seconds>{60s, 600s, 3600s});
    CHECK(accepted("queue.retry-schedule", "30").queue.retry_schedule == std::vector<std::chrono::seconds>{30s});
    check_refusals("queue.retry-schedule",
                   {{"", "no value given (use durations separated by commas, e.g. 5m,15m,1h)"},
                    {"5m,,1h", "\"5m,,1h\" has an empty item (use durations separated by commas, e.g. 5m,15m,1h)"},
                    {"5m,", "\"5m,\" has an empty item (use durations separated by commas, e.g. 5m,15m,1h)"},
                    {"5m,1x", "item \"1x\" of \"5m,1x\" is not a duration (use a number with s, m, h or d)"},
                    {"5m;15m", "item \"5m;15m\" of \"5m;15m\" is not a duration (use a number with s, m, h or d)"},
                    {"5m,0s", "item \"0s\" of \"5m,0s\" is out of range (use a duration from 1s to 365d)"}});
}

TEST_CASE("Counts are whole numbers within the option's range", "[settings]")
{
    CHECK(accepted("limits.max-recipients", "1").limits.max_recipients == 1);
    CHECK(accepted("limits.max-recipients", "007").limits.max_recipients == 7);
    CHECK(accepted("limits.max-connections", "4294967295").limits.max_connections == 4294967295u);
    const std::string hint = " (use a whole number from 1 to 4294967295)";
    const auto bad = [&](const std::string& v) { return Refusal{v, "\"" + v + "\" is not a whole number" + hint}; };
    const auto range = [&](const std::string& v) { return Refusal{v, "\"" + v + "\" is out of range" + hint}; };
    check_refusals("limits.max-recipients", {{"", "no value given" + hint}, range("0"), range("-1"),
                                             range("4294967296"), range("99999999999999999999"), bad("5x"),
                                             bad("1e3"), bad("10K"), bad("٣")});
    check_refusals("limits.max-errors", {range("0")});
    check_refusals("limits.max-connections", {range("0")});
    check_refusals("limits.max-connections-per-ip", {range("0")});
    const auto prefix = [](const std::string& v) {
        return Refusal{v, "\"" + v + "\" is out of range (use a whole number from 1 to 128)"};
    };
    check_refusals("limits.ipv6-prefix-length", {prefix("0"), prefix("129")});
}

TEST_CASE("Ports run from 1 to 65535", "[settings]")
{
    CHECK(accepted("client.port", "65535").client.port == 65535);
    check_refusals("client.port", {{"", "no value given (use a whole number from 1 to 65535)"},
                                   {"0", "\"0\" is out of range (use a whole number from 1 to 65535)"},
                                   {"65536", "\"65536\" is out of range (use a whole number from 1 to 65535)"},
                                   {"http", "\"http\" is not a port number (use a whole number from 1 to 65535)"}});
}

TEST_CASE("Booleans are true/false, yes/no, on/off or 1/0 in any case", "[settings]")
{
    for (const char* yes : {"true", "TRUE", "yes", "On", "1"})
        CHECK(accepted("listen.starttls", yes).listen.starttls);
    for (const char* no : {"false", "No", "OFF", "0"})
        CHECK_FALSE(accepted("listen.starttls", no).listen.starttls);
    const std::string hint = " (use true or false; yes/no, on/off and 1/0 also work)";
    const auto bad = [&](const std::string& v) { return Refusal{v, "\"" + v + "\" is not a boolean" + hint}; };
    check_refusals("tls.require-client-eku",
                   {{"", "no value given" + hint}, bad("maybe"), bad("2"), bad("truee"), bad("trüe"), bad("t")});
    check_refusals("dns.forward-confirm", {bad("ja")});
}

TEST_CASE("Listener endpoints are ADDRESS:PORT, IPv6 in brackets", "[settings]")
{
    CHECK(accepted("listen.public", "[::1]:2626").listen.public_endpoints.at(0).str() == "[::1]:2626");
    CHECK(accepted("listen.private", "127.0.0.3:2687").listen.private_endpoints.at(0).str() == "127.0.0.3:2687");
    const std::string hint = " (use ADDRESS:PORT, e.g. 127.0.0.3:2626 or [::1]:2626)";
    const auto bad = [&](const std::string& v) { return Refusal{v, "\"" + v + "\" is not a listening address" + hint}; };
    check_refusals("listen.public", {{"", "no value given" + hint}, bad("127.0.0.3"), bad("127.0.0.3:0"),
                                     bad("127.0.0.3:65536"), bad("::1:2626"), bad("localhost:2626"),
                                     bad("127.0.0.３:2626"), bad("127.0.0.3:-1")});
    check_refusals("listen.private", {bad("*:2687")});
}

TEST_CASE("hostname must be a fully qualified domain name and is normalised", "[settings]")
{
    CHECK(accepted("hostname", "B.Test.").hostname == "b.test");
    CHECK(accepted("hostname", "bücher.test").hostname == "xn--bcher-kva.test");
    const std::string hint = " (use a fully qualified domain name such as mx.example.org)";
    const auto partial = [&](const std::string& v) { return Refusal{v, "\"" + v + "\" is not fully qualified" + hint}; };
    const auto bad = [&](const std::string& v) { return Refusal{v, "\"" + v + "\" is not a valid host name" + hint}; };
    check_refusals("hostname", {{"", "no value given" + hint}, {"  ", "no value given" + hint}, partial("localhost"),
                                partial("192.0.2.1"), bad("b..test"), bad("-b.test"), bad("b_x.test"), bad("*.b.test"),
                                bad("b test"), bad("mx.b.test..")});
}

TEST_CASE("Local domains are normalised host names; zones keep a trailing dot", "[settings]")
{
    CHECK(accepted("delivery.local-domain", "B.TEST.").delivery.local_domains ==
          std::vector<std::string>{"b.test"});
    CHECK(accepted("delivery.local-domain", "localhost").delivery.local_domains ==
          std::vector<std::string>{"localhost"});
    CHECK(accepted("dns.nodefault-zone", "Test").dns.nodefault_zones == std::vector<std::string>{"test."});
    CHECK(accepted("dns.nodefault-zone", "127.in-addr.arpa.").dns.nodefault_zones ==
          std::vector<std::string>{"127.in-addr.arpa."});
    check_refusals("delivery.local-domain",
                   {{"", "no value given (use a domain name such as example.org)"},
                    {"b..test", "\"b..test\" is not a valid domain name (use a domain name such as example.org)"}});
    check_refusals("dns.nodefault-zone",
                   {{"", "no value given (use a zone name such as test. or 127.in-addr.arpa.)"},
                    {".", "\".\" is not a DNS zone name (use a zone name such as test. or 127.in-addr.arpa.)"},
                    {"test..", "\"test..\" is not a DNS zone name (use a zone name such as test. or "
                               "127.in-addr.arpa.)"}});
}

TEST_CASE("Addresses, resolvers and LMTP targets are checked and written canonically", "[settings]")
{
    CHECK(accepted("client.source", "").client.source.empty());
    CHECK(accepted("client.source", "::ffff:127.0.0.2").client.source == "127.0.0.2");
    CHECK(accepted("client.source", "2001:DB8::1").client.source == "2001:db8::1");
    CHECK(accepted("dns.resolver", "127.0.0.1").dns.resolver == "127.0.0.1");
    CHECK(accepted("dns.resolver", "::1@53").dns.resolver == "::1@53");
    CHECK(accepted("dns.resolver", "").dns.resolver.empty());
    CHECK(accepted("delivery.lmtp", "127.0.0.1:24").delivery.lmtp == "127.0.0.1:24");
    CHECK(accepted("delivery.recipients", "any").delivery.recipients == "any");
    CHECK(accepted("delivery.lmtp", "[::1]:24").delivery.lmtp == "[::1]:24");
    CHECK(accepted("delivery.lmtp", "unix:/run/lmtp").delivery.lmtp == "unix:/run/lmtp");

    const auto ip = [](const std::string& v) {
        return Refusal{v, "\"" + v + "\" is not an IP address (use an IPv4 or IPv6 address, e.g. 127.0.0.2)"};
    };
    const auto resolver = [](const std::string& v) {
        return Refusal{v, "\"" + v + "\" is not a resolver address (use ADDRESS or ADDRESS@PORT, e.g. 127.0.0.1@53)"};
    };
    const auto lmtp = [](const std::string& v) {
        return Refusal{v, "\"" + v +
                              "\" is not an LMTP address (use unix:/path/to/socket or ADDRESS:PORT, e.g. 127.0.0.1:24 or [::1]:24)"};
    };
    check_refusals("client.source", {ip("127.0.0.256"), ip("localhost"), ip("127.0.0.2:26")});
    check_refusals("dns.resolver", {resolver("127.0.0.1@"), resolver("127.0.0.1@0"), resolver("127.0.0.1@65536"),
                                    resolver("127.0.0.1:53"), resolver("dns.example@53")});
    check_refusals("delivery.lmtp", {lmtp("unix:"), lmtp("localhost"), lmtp("localhost:0"), lmtp("::1:24"),
                                     lmtp("[127.0.0.1]:24"), lmtp("LocalHost:24"), lmtp("dovecot.example:24")});
    const auto recipients = [](const std::string& v) {
        return Refusal{v, "\"" + v + "\" is not a recipient check (use mailbox, any or file:/path/to/list)"};
    };
    check_refusals("delivery.recipients", {recipients("file:"), recipients("all"), recipients("Mailbox")});
}

TEST_CASE("tls.min-version is 1.2 or 1.3; user is a portable login name", "[settings]")
{
    CHECK(accepted("tls.min-version", "1.3").tls.min_version == "1.3");
    CHECK(accepted("user", "_amtp").user == "_amtp");
    check_refusals("tls.min-version", {{"", "no value given (use 1.2 or 1.3)"},
                                       {"1.1", "\"1.1\" is not a supported TLS version (use 1.2 or 1.3)"},
                                       {"TLSv1.2", "\"TLSv1.2\" is not a supported TLS version (use 1.2 or 1.3)"}});
    const auto bad = [](const std::string& v) {
        return Refusal{v, "\"" + v +
                              "\" is not a user name (use a login name such as amtp, or nothing to keep the current "
                              "user)"};
    };
    check_refusals("user", {bad("-x"), bad("amtp user"), bad("ämtp")});
}

TEST_CASE("Paths: an optional one may be empty, a listed one may not, none holds control characters",
          "[settings]")
{
    CHECK(accepted("tls.crl", "").tls.crl.empty());
    const std::string hint = " (use a file name; a relative one is taken from the configuration file's directory)";
    check_refusals("tls.trusted-ca",
                   {{"", "no value given" + hint}, {"ca\x01.pem", "\"ca\\x01.pem\" is not a file name" + hint}});
    check_refusals("delivery.maildir-root", {{"", "no value given" + hint}});
}

TEST_CASE("Relative paths are taken from the configuration file's directory", "[settings]")
{
    const auto dir = amtp::test::fresh_dir("settings-paths");
    const auto file = amtp::test::write_file(dir + "/conf/amtpd.ini", R"(hostname = b.test
[tls]
certificate = chain.pem
key = ../keys/./key.pem
trusted-ca = /etc/ssl/ca.pem
private-ca = sub/private-ca.pem
crl = crl.pem
[dns]
trust-anchor = root.key
[delivery]
maildir-root = mail
lmtp = unix:lmtp.sock
[policy]
file = policy.xml
[queue]
directory = /var/spool/amtp
)");
    const auto s = amtp::load_settings(file);
    const auto conf = fs::path(dir) / "conf";
    CHECK(s.tls.certificate == (conf / "chain.pem").string());
    CHECK(s.tls.key == (fs::path(dir) / "keys" / "key.pem").string());
    CHECK(s.tls.trusted_ca == std::vector<std::string>{"/etc/ssl/ca.pem"});
    CHECK(s.tls.private_ca == std::vector<std::string>{(conf / "sub" / "private-ca.pem").string()});
    CHECK(s.tls.crl == (conf / "crl.pem").string());
    CHECK(s.dns.trust_anchor == (conf / "root.key").string());
    CHECK(s.delivery.maildir_root == (conf / "mail").string());
    CHECK(s.delivery.lmtp == "unix:" + (conf / "lmtp.sock").string());
    CHECK(s.policy.file == (conf / "policy.xml").string());
    CHECK(s.queue.directory == "/var/spool/amtp");

    // A relative source name is taken from the current directory: the result is absolute.
    const auto relative = load("hostname = b.test\n[policy]\nfile = policy.xml\n", "conf/amtpd.ini");
    CHECK(fs::path(relative.policy.file).is_absolute());
    CHECK(relative.policy.file == (fs::current_path() / "conf" / "policy.xml").string());
}

TEST_CASE("Repeatable keys are collected in file order, across repeated sections", "[settings]")
{
    const auto s = load(R"(hostname = b.test
[listen]
public = 127.0.0.3:2626
[tls]
trusted-ca = /a.pem
[listen]
public = 127.0.0.4:2626
private = 127.0.0.3:2687
[tls]
trusted-ca = /b.pem
[listen]
public = [::1]:2626
[delivery]
local-domain = c.test
local-domain = a.test
local-domain = b.test
)");
    REQUIRE(s.listen.public_endpoints.size() == 3);
    CHECK(s.listen.public_endpoints[0].str() == "127.0.0.3:2626");
    CHECK(s.listen.public_endpoints[1].str() == "127.0.0.4:2626");
    CHECK(s.listen.public_endpoints[2].str() == "[::1]:2626");
    CHECK(s.tls.trusted_ca == std::vector<std::string>{"/a.pem", "/b.pem"});
    CHECK(s.delivery.local_domains == std::vector<std::string>{"c.test", "a.test", "b.test"});
}

TEST_CASE("Before the first section a key may be written in full, as --check-config prints it", "[settings]")
{
    const auto s = load("hostname = b.test\nlisten.public = 127.0.0.3:2626\nlimits.max-errors = 3\n[listen]\n"
                        "public = 127.0.0.4:2626\n");
    REQUIRE(s.listen.public_endpoints.size() == 2);
    CHECK(s.listen.public_endpoints[1].str() == "127.0.0.4:2626");
    CHECK(s.limits.max_errors == 3);
    // Both spellings name one key: giving it twice is still an error.
    const auto e = error_of("hostname = b.test\nlimits.max-errors = 3\n[limits]\nmax-errors = 4\n");
    CHECK(std::string(e.what()) ==
          "amtpd.ini:4: limits.max-errors: given twice (first on line 2); this key takes one value");
}

TEST_CASE("A key given twice that is not repeatable is refused at its second line", "[settings]")
{
    auto e = error_of("hostname = b.test\n[listen]\nstarttls = true\n\nstarttls = false\n");
    CHECK(e.line() == 5);
    CHECK(e.key() == "listen.starttls");
    CHECK(e.message() == "given twice (first on line 3); this key takes one value");

    e = error_of("hostname = a.test\nhostname = b.test\n");
    CHECK(std::string(e.what()) == "amtpd.ini:2: hostname: given twice (first on line 1); this key takes one value");

    e = error_of("hostname = b.test\n[limits]\nmax-errors = 5\n[tls]\nkey = /k\ncertificate = /c\n[limits]\n"
                 "max-errors = 6\n");
    CHECK(e.line() == 8);
    CHECK(e.key() == "limits.max-errors");
}

TEST_CASE("An unknown key is refused with its line and a hint", "[settings]")
{
    const struct {
        const char* text;
        unsigned line;
        const char* key;
        const char* message;
    } cases[] = {
        {"hostname = b.test\n[listen]\npubic = 127.0.0.3:2626\n", 3, "listen.pubic",
         "unknown key (did you mean listen.public?)"},
        {"hostname = b.test\n[limits]\nmax recipients = 5\n", 3, "limits.max recipients",
         "unknown key (did you mean limits.max-recipients?)"},
        {"hostname = b.test\n[listen]\nhostname = b.test\n", 3, "listen.hostname",
         "unknown key (hostname belongs before the first [section])"},
        {"hostname = b.test\npublic = 127.0.0.3:2626\n", 2, "public", "unknown key (public belongs in [listen])"},
        {"hostname = b.test\n[limits]\nuser = amtp\n", 3, "limits.user",
         "unknown key (user belongs before the first [section])"},
        {"hostname = b.test\n[tls]\nfoo = 1\n", 3, "tls.foo",
         "unknown key (the keys in [tls] are certificate, key, trusted-ca, private-ca, crl, require-client-eku, "
         "min-version, ticket-keys)"},
        {"hostname = b.test\nbogus = 1\n", 2, "bogus",
         "unknown key (the keys before the first [section] are hostname, user)"},
        {"Hostname = b.test\n", 1, "Hostname", "unknown key (did you mean hostname?)"},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        const auto e = error_of(c.text);
        CHECK(e.line() == c.line);
        CHECK(e.key() == c.key);
        CHECK(e.message() == c.message);
    }
}

TEST_CASE("An unknown section is refused with its line", "[settings]")
{
    auto e = error_of("hostname = b.test\n\n[lisen]\npublic = 127.0.0.3:2626\n");
    CHECK(std::string(e.what()) == "amtpd.ini:3: [lisen]: unknown section (did you mean [listen]?)");
    e = error_of("hostname = b.test\n[Limits]\n");
    CHECK(e.message() == "unknown section (did you mean [limits]?)");
    e = error_of("hostname = b.test\n[mail]\n");
    CHECK(e.line() == 2);
    CHECK(e.key() == "[mail]");
    CHECK(e.message() == "unknown section (the sections are listen, tls, dns, delivery, policy, client, queue, limits)");
}

TEST_CASE("A missing hostname is refused with line 0", "[settings]")
{
    for (const char* text : {"", "# nothing\n", "[listen]\npublic = 127.0.0.3:2626\n"}) {
        INFO(text);
        const auto e = error_of(text);
        CHECK(e.line() == 0);
        CHECK(e.key() == "hostname");
        CHECK(std::string(e.what()) ==
              "amtpd.ini: hostname: required key missing (add hostname = mx.example.org before the first "
              "[section])");
    }
}

TEST_CASE("A line that is not blank, a comment, a [section] or key = value is a syntax error with its line",
          "[settings]")
{
    const struct {
        const char* text;
        unsigned line;
        const char* key;
        const char* message;
    } cases[] = {
        {"hostname = b.test\n[listen]\npublic 127.0.0.3:2626\n", 3, "listen.public",
         "\"public 127.0.0.3:2626\" has no \"=\" (write public = value)"},
        {"hostname = b.test\n\ngarbage here\n", 3, "(top level)",
         "\"garbage here\" is not a setting (write key = value, a [section] header or a # comment)"},
        {"hostname = b.test\n[tls]\n[listen\n", 3, "[tls]", "\"[listen\" is not a section header (write [name])"},
        {"hostname = b.test\n[]\n", 2, "(top level)", "\"[]\" is not a section header (write [name])"},
        {"hostname = b.test\n[ ]\n", 2, "(top level)", "\"[ ]\" is not a section header (write [name])"},
        {"hostname = b.test\n[limits]\n= 5\n", 3, "[limits]", "\"= 5\" has no key before \"=\" (write key = value)"},
        {"hostname = b.test\n[tls]\ncertificate = \"chain.pem\"\n", 3, "tls.certificate",
         "values are written without quotes (write certificate = chain.pem)"},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        const auto e = error_of(c.text);
        CHECK(e.line() == c.line);
        CHECK(e.key() == c.key);
        CHECK(e.message() == c.message);
    }
}

TEST_CASE("CRLF line ends, comments, indentation and a byte-order mark are accepted", "[settings]")
{
    const std::string text = "\xEF\xBB\xBF# a comment\r\n"
                             "hostname = b.test # a trailing comment\r\n"
                             "; a semicolon comment\r\n"
                             "\r\n"
                             "[ listen ]   # section comment\r\n"
                             "  public = 127.0.0.3:2626  \r\n"
                             "\t# an indented comment\r\n"
                             "    ; another\r\n"
                             "[limits]\r\n"
                             "max-recipients=7\r\n"
                             "command-timeout = 2m"; // no final line end
    const auto s = load(text);
    CHECK(s.hostname == "b.test");
    REQUIRE(s.listen.public_endpoints.size() == 1);
    CHECK(s.listen.public_endpoints[0].str() == "127.0.0.3:2626");
    CHECK(s.limits.max_recipients == 7);
    CHECK(s.limits.command_timeout == 2min);

    // Line numbers still count CRLF lines.
    const auto e = error_of("hostname = b.test\r\n\r\n[limits]\r\nmax-errors = many\r\n");
    CHECK(std::string(e.what()) ==
          "amtpd.ini:4: limits.max-errors: \"many\" is not a whole number (use a whole number from 1 to "
          "4294967295)");
}

TEST_CASE("tls.certificate and tls.key must be given together", "[settings]")
{
    auto e = error_of("hostname = b.test\n[tls]\ncertificate = chain.pem\n");
    CHECK(std::string(e.what()) ==
          "amtpd.ini:3: tls.certificate: given without tls.key (a certificate is useless without its private key)");
    e = error_of("hostname = b.test\n[tls]\ntrusted-ca = ca.pem\nkey = key.pem\ncertificate =\n");
    CHECK(std::string(e.what()) == "amtpd.ini:4: tls.key: given without tls.certificate (the key needs its certificate)");
    const auto s = load("hostname = b.test\n[tls]\nkey = key.pem\ncertificate = chain.pem\n", "/etc/amtp/amtpd.ini");
    CHECK(s.tls.certificate == "/etc/amtp/chain.pem");
    CHECK(s.tls.key == "/etc/amtp/key.pem");
}

TEST_CASE("A listener address may be given only once", "[settings]")
{
    auto e = error_of("hostname = b.test\n[listen]\npublic = 127.0.0.3:2626\npublic = 127.0.0.3:2626\n");
    CHECK(std::string(e.what()) ==
          "amtpd.ini:4: listen.public: 127.0.0.3:2626 is already a listener (listen.public on line 3)");
    e = error_of("hostname = b.test\n[listen]\nprivate = [::1]:26\npublic = [0:0::1]:26\n");
    CHECK(std::string(e.what()) == "amtpd.ini:4: listen.public: [::1]:26 is already a listener (listen.private on "
                                   "line 3)");
}

TEST_CASE("An unreadable configuration file is a ConfigError naming the file", "[settings]")
{
    const auto missing = amtp::test::fresh_dir("settings-missing") + "/amtpd.ini";
    try {
        amtp::load_settings(missing);
        FAIL("loaded a missing file");
    } catch (const ConfigError& e) {
        CHECK(e.file() == missing);
        CHECK(e.line() == 0);
        CHECK(e.message() == "cannot read the configuration file: No such file or directory");
    }
    const auto directory = amtp::test::fresh_dir("settings-directory");
    try {
        amtp::load_settings(directory);
        FAIL("loaded a directory");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()) == directory + ": cannot read the configuration file: it is a directory");
    }
}

TEST_CASE("describe_settings prints every option as section.key = value", "[settings]")
{
    const auto text = amtp::describe_settings(load(full_file, "/etc/amtp/amtpd.ini"));
    for (const auto& option : amtp::option_table()) {
        INFO(option.name);
        CHECK(text.find(std::string(option.name) + " = ") != std::string::npos);
    }
    CHECK(text.find("listen.public = 127.0.0.3:2626\nlisten.public = [::1]:2626\n") != std::string::npos);
    CHECK(text.find("limits.max-message-size = 50M\n") != std::string::npos);
    CHECK(text.find("queue.retry-schedule = 1m,10m,1h\n") != std::string::npos);
    CHECK(text.find("tls.crl = /etc/amtp/crl.pem\n") != std::string::npos);
    CHECK(amtp::describe_settings(load("hostname = b.test\n")).find("tls.crl = (none)\n") != std::string::npos);
}

TEST_CASE("settings_help gives one line per option with its type and default", "[settings]")
{
    const auto help = amtp::settings_help();
    std::istringstream in(help);
    std::string line;
    std::size_t count = 0;
    for (const auto& option : amtp::option_table()) {
        REQUIRE(std::getline(in, line));
        ++count;
        std::string type = option.type;
        for (auto& c : type)
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        INFO(line);
        CHECK(line.rfind("  " + std::string(option.name) + "=" + type + "  ", 0) == 0);
        CHECK(line.find(option.help) != std::string::npos);
        if (*option.default_value)
            CHECK(line.find("default: " + std::string(option.default_value) + ")") != std::string::npos);
        if (option.required)
            CHECK(line.find("(required)") != std::string::npos);
        if (option.repeatable)
            CHECK(line.find("(repeatable") != std::string::npos);
    }
    CHECK_FALSE(std::getline(in, line));
    CHECK(count == amtp::option_table().size());
}

TEST_CASE("docs/CONFIGURATION.md is exactly the generated reference", "[settings]")
{
    const auto path = amtp::test::source_dir() + "/docs/CONFIGURATION.md";
    const auto markdown = amtp::settings_markdown();
    INFO("regenerate with: build/bin/amtp-config --markdown > docs/CONFIGURATION.md");
    CHECK(amtp::test::read_file(path) == markdown);
    CHECK(markdown.rfind("<!-- Generated by `amtp-config --markdown`", 0) == 0);
    for (const auto& option : amtp::option_table())
        CHECK(markdown.find("| `" + std::string(option.name) + "` | " + option.type + " |") != std::string::npos);
}

TEST_CASE("man/amtp.ini.5 is exactly the generated man page", "[settings]")
{
    const auto path = amtp::test::source_dir() + "/man/amtp.ini.5";
    const auto man = amtp::settings_man();
    INFO("regenerate with: build/bin/amtp-config --man > man/amtp.ini.5");
    CHECK(amtp::test::read_file(path) == man);
    CHECK(man.rfind(".\\\" Generated by amtp-config --man", 0) == 0);
    for (const auto& option : amtp::option_table()) {
        std::string name;
        for (const char c : std::string(option.name))
            name += c == '-' ? std::string("\\-") : std::string(1, c);
        CHECK(man.find(".TP\n\\fB\\%" + name + "\\fR = \\fI") != std::string::npos);
    }
}

TEST_CASE("amtp.ini(5) is ASCII roff: no backtick markup left, minus signs where typed, no stray control lines",
          "[settings]")
{
    const auto man = amtp::settings_man();
    std::istringstream in(man);
    std::string line;
    while (std::getline(in, line)) {
        INFO(line);
        for (const char c : line)
            CHECK(static_cast<unsigned char>(c) < 0x80);
        // Every control line is one of the generator's own macros.
        if (!line.empty() && (line[0] == '.' || line[0] == '\'')) {
            static const std::set<std::string> macros = {".\\\"", ".TH", ".ad", ".SH", ".SS", ".TP", ".IP", ".PP",
                                                         ".I",    ".B",  ".BR", ".RS", ".RE", ".EX", ".EE"};
            CHECK(macros.count(line.substr(0, line.find(' '))) == 1);
        }
    }
    // The texts' markup is gone; hyphens are minus signs, in words kept whole, where
    // they are typed and hyphens in prose; non-ASCII is escaped.
    CHECK(man.find('`') == std::string::npos);
    CHECK(man.find("\\fB\\%xn\\-\\-bcher\\-kva.example\\fR") != std::string::npos);
    CHECK(man.find("b\\[u00FC]cher") != std::string::npos);
    CHECK(man.find("1024\\[u00B2]") != std::string::npos);
    CHECK(man.find("serverAuth-only") != std::string::npos);
    CHECK(man.find("re-read") != std::string::npos);
    CHECK(man.find("needs \\%tls.certificate") != std::string::npos);
    CHECK(man.find(" \\%limits.ipv6\\-prefix\\-length") != std::string::npos);
    CHECK(man.find("\\%re-read") == std::string::npos);
}

TEST_CASE("amtp.ini(5)'s example is a file the programs accept", "[settings]")
{
    const auto man = amtp::settings_man();
    const auto begin = man.find(".EX\n");
    const auto end = man.find(".EE\n");
    REQUIRE(begin != std::string::npos);
    REQUIRE(end > begin);
    std::string text;
    const std::string roff = man.substr(begin + 4, end - begin - 4);
    for (std::size_t i = 0; i < roff.size(); ++i) {
        if (roff.compare(i, 2, "\\-") == 0) {
            text += '-';
            ++i;
        } else {
            REQUIRE(roff[i] != '\\');
            text += roff[i];
        }
    }
    const auto s = load(text, "/etc/amtp/amtp.ini");
    CHECK(s.tls.key == "/etc/amtp/key.pem");
    CHECK(s.delivery.local_domains == std::vector<std::string>{"b.test"});
    CHECK(s.policy.file == "/etc/amtp/policy.xml");
}

TEST_CASE("examples/amtpd.ini loads and shows every option", "[settings]")
{
    const auto path = amtp::test::source_dir() + "/examples/amtpd.ini";
    const auto s = amtp::load_settings(path);
    CHECK(s.hostname == "b.test");
    CHECK_FALSE(s.listen.public_endpoints.empty());
    // Its resolver is named, so no nodefault zone is needed (the option stays, commented).
    CHECK(s.dns.nodefault_zones.empty());
    const auto mentioned = mentioned_options(amtp::test::read_file(path));
    for (const auto& option : amtp::option_table()) {
        INFO(option.name);
        CHECK(mentioned.count(option.name) == 1);
    }
}

TEST_CASE("amtp-config --check-config exits 0 for a good file and 78 (EX_CONFIG) for a bad one", "[settings]")
{
    const auto binary = amtp_config_binary();
    INFO("amtp-config expected at " << binary.string());
    REQUIRE(fs::exists(binary));
    const auto dir = amtp::test::fresh_dir("settings-amtp-config");
    const auto run = [&](const std::string& args) {
        return amtp::test::run_command("'" + binary.string() + "' " + args + " >'" + dir + "/out' 2>'" + dir +
                                       "/err'");
    };

    const auto good = amtp::test::write_file(dir + "/good.ini", "hostname = b.test\n[listen]\npublic = 127.0.0.3:2626\n");
    CHECK(run("--check-config '" + good + "'") == 0);
    const auto out = amtp::test::read_file(dir + "/out");
    CHECK(out == amtp::describe_settings(amtp::load_settings(good)) + "configuration OK\n");
    CHECK(amtp::test::read_file(dir + "/err").empty());

    const auto bad = amtp::test::write_file(dir + "/bad.ini", "hostname = b.test\n[limits]\nmax-message-size = 25Q\n");
    CHECK(run("--check-config '" + bad + "'") == 78);
    CHECK(amtp::test::read_file(dir + "/err") ==
          bad + ":3: limits.max-message-size: \"25Q\" is not a size (use a number with K, M or G)\n");
    CHECK(amtp::test::read_file(dir + "/out").empty());

    CHECK(run("--check-config '" + dir + "/missing.ini'") == 78);
    CHECK(run("--check-config") == 64); // EX_USAGE
    CHECK(run("") == 64);
}

TEST_CASE("amtp-config --markdown, --man and --help print what the option table gives", "[settings]")
{
    const auto binary = amtp_config_binary();
    REQUIRE(fs::exists(binary));
    const auto dir = amtp::test::fresh_dir("settings-amtp-config-docs");
    CHECK(amtp::test::run_command("'" + binary.string() + "' --markdown >'" + dir + "/md'") == 0);
    CHECK(amtp::test::read_file(dir + "/md") == amtp::settings_markdown());
    CHECK(amtp::test::run_command("'" + binary.string() + "' --man >'" + dir + "/man'") == 0);
    CHECK(amtp::test::read_file(dir + "/man") == amtp::settings_man());
    CHECK(amtp::test::run_command("'" + binary.string() + "' --help >'" + dir + "/help'") == 0);
    CHECK(amtp::test::read_file(dir + "/help").find(amtp::settings_help()) != std::string::npos);
}

TEST_CASE("IPv6 clients count per limits.ipv6-prefix-length network for max-connections-per-ip, IPv4 per address",
          "[settings]")
{
    amtp::Limits limits;
    const auto key = [&](const char* a) { return amtp::connection_limit_key(limits, *amtp::IpAddress::parse(a)).str(); };
    CHECK(key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::");
    CHECK(key("2001:db8:1:2:bbbb::7") == key("2001:db8:1:2:aaaa::1"));
    CHECK(key("2001:db8:1:3::1") != key("2001:db8:1:2::1"));
    CHECK(key("192.0.2.7") == "192.0.2.7");
    CHECK(key("::ffff:192.0.2.7") == "192.0.2.7");  // an IPv4 client seen on an IPv6 socket
    limits.ipv6_prefix_length = 56;
    CHECK(key("2001:db8:1:2ff:aaaa::1") == "2001:db8:1:200::");
    limits.ipv6_prefix_length = 128;
    CHECK(key("2001:db8::5") == "2001:db8::5");
}
