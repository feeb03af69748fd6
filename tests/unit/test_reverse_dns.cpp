// The client's PTR names and the verdict on its EHLO name, against a real unbound on
// loopback (tests/support/unbound_server).
#include "amtp/reverse_dns.hpp"
#include "support/unbound_server.hpp"

#include <catch2/catch.hpp>

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <optional>

using namespace amtp;
using amtp::test::SilentPort;
using amtp::test::UnboundConfig;
using amtp::test::UnboundServer;
using namespace std::chrono_literals;

namespace {

UnboundConfig reverse_config()
{
    UnboundConfig c;
    c.local_data = {
        "mx.a.test. 300 IN A 127.0.0.2",
        "mx.a.test. 300 IN AAAA 2001:db8::2",
        "one.a.test. 300 IN A 127.0.0.5",
        "two.a.test. 300 IN A 127.0.0.50",  // leads elsewhere
        "bad.a.test. 300 IN A 127.0.0.60",
        "ok.a.test. 300 IN A 127.0.0.8",
        "v6.a.test. 300 IN AAAA 2001:db8::9",
    };
    c.local_data_ptr = {
        "127.0.0.2 mx.a.test.",
        "2001:db8::2 mx.a.test.",
        "127.0.0.5 one.a.test.",
        "127.0.0.5 two.a.test.",
        "127.0.0.6 bad.a.test.",
        "127.0.0.6 gone.a.test.",  // no address records at all
        // PTR names whose forward lookups fail with SERVFAIL (a zone failing validation).
        "127.0.0.7 host.66.0.0.127.in-addr.arpa.",
        "127.0.0.8 ok.a.test.",
        "127.0.0.8 host.66.0.0.127.in-addr.arpa.",
        "2001:db8::9 v6.a.test.",
    };
    c.servfail_zones = {"66.0.0.127.in-addr.arpa."};
    return c;
}

ResolverOptions options_for(const UnboundServer& server)
{
    ResolverOptions o;
    o.forwarder = server.forwarder();
    o.nodefault_zones = server.zones();
    o.timeout = 10s;
    return o;
}

IpAddress ip(const char* text)
{
    const auto a = IpAddress::parse(text);
    REQUIRE(a);
    return *a;
}

std::vector<std::string> sorted(std::vector<std::string> v)
{
    std::sort(v.begin(), v.end());
    return v;
}

ReverseDnsResult result(DnsStatus status, std::vector<std::string> names, std::vector<std::string> unconfirmed = {},
                        std::vector<std::string> unchecked = {})
{
    ReverseDnsResult r;
    r.status = status;
    r.names = std::move(names);
    r.unconfirmed = std::move(unconfirmed);
    r.unchecked = std::move(unchecked);
    return r;
}

} // namespace

TEST_CASE("The PTR query name of an IPv4 address is its octets reversed under in-addr.arpa")
{
    CHECK(ptr_query_name(ip("192.0.2.1")) == "1.2.0.192.in-addr.arpa");
    CHECK(ptr_query_name(ip("127.0.0.2")) == "2.0.0.127.in-addr.arpa");
    CHECK(ptr_query_name(ip("::ffff:10.1.2.3")) == "3.2.1.10.in-addr.arpa");  // mapped: as IPv4
}

TEST_CASE("The PTR query name of an IPv6 address is its 32 nibbles reversed under ip6.arpa")
{
    CHECK(ptr_query_name(ip("2001:db8::567:89ab")) ==
          "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    CHECK(ptr_query_name(ip("::1")) ==
          "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
}

TEST_CASE("An EHLO name among the PTR names passes the PTR check")
{
    CHECK(check_ptr(result(DnsStatus::answer, {"one.a.test", "mx.a.test"}), "mx.a.test") == Reason::none);
    CHECK(check_ptr(result(DnsStatus::answer, {"mx.a.test"}), "MX.A.Test.") == Reason::none);
}

TEST_CASE("An EHLO name that is not a PTR name is ptr_mismatch")
{
    CHECK(check_ptr(result(DnsStatus::answer, {"mx.a.test"}), "other.a.test") == Reason::ptr_mismatch);
    CHECK(check_ptr(result(DnsStatus::answer, {"mx.a.test"}, {"other.a.test"}), "other.a.test") ==
          Reason::ptr_mismatch);
}

TEST_CASE("An address without PTR names is ptr_missing")
{
    CHECK(check_ptr(result(DnsStatus::negative, {}), "mx.a.test") == Reason::ptr_missing);
    CHECK(check_ptr(result(DnsStatus::answer, {}), "mx.a.test") == Reason::ptr_missing);
}

TEST_CASE("PTR names that do not resolve back to the address are ptr_unconfirmed")
{
    CHECK(check_ptr(result(DnsStatus::answer, {}, {"mx.a.test"}), "mx.a.test") == Reason::ptr_unconfirmed);
}

TEST_CASE("A temporary DNS failure is dns_temporary, never a permanent refusal")
{
    CHECK(check_ptr(result(DnsStatus::temporary, {}), "mx.a.test") == Reason::dns_temporary);
    CHECK(check_ptr(result(DnsStatus::temporary, {"mx.a.test"}), "mx.a.test") == Reason::dns_temporary);
    // The EHLO name's own forward lookup failed temporarily while another name confirmed.
    CHECK(check_ptr(result(DnsStatus::answer, {"ok.a.test"}, {}, {"mx.a.test"}), "mx.a.test") ==
          Reason::dns_temporary);
}

TEST_CASE("Without forward confirmation every PTR name is kept")
{
    UnboundServer server(reverse_config());
    Resolver resolver(options_for(server));
    const auto r = lookup_client_names_blocking(resolver, ip("127.0.0.5"), false);
    CHECK(r.status == DnsStatus::answer);
    CHECK(sorted(r.names) == std::vector<std::string>{"one.a.test", "two.a.test"});
    CHECK_FALSE(r.forward_checked);
    CHECK(check_ptr(r, "two.a.test") == Reason::none);
}

TEST_CASE("Forward confirmation keeps only the PTR names whose addresses lead back")
{
    UnboundServer server(reverse_config());
    Resolver resolver(options_for(server));
    const auto r = lookup_client_names_blocking(resolver, ip("127.0.0.5"), true);
    CHECK(r.status == DnsStatus::answer);
    CHECK(r.forward_checked);
    CHECK(r.names == std::vector<std::string>{"one.a.test"});
    CHECK(r.unconfirmed == std::vector<std::string>{"two.a.test"});
    CHECK(check_ptr(r, "one.a.test") == Reason::none);
    CHECK(check_ptr(r, "two.a.test") == Reason::ptr_mismatch);
}

TEST_CASE("Forward confirmation of an IPv6 address uses its AAAA records")
{
    UnboundServer server(reverse_config());
    Resolver resolver(options_for(server));
    const auto mx = lookup_client_names_blocking(resolver, ip("2001:db8::2"), true);
    CHECK(mx.names == std::vector<std::string>{"mx.a.test"});
    const auto v6 = lookup_client_names_blocking(resolver, ip("2001:db8::9"), true);
    CHECK(v6.names == std::vector<std::string>{"v6.a.test"});
    CHECK(check_ptr(v6, "v6.a.test") == Reason::none);
}

TEST_CASE("PTR names none of which resolves back give ptr_unconfirmed")
{
    UnboundServer server(reverse_config());
    Resolver resolver(options_for(server));
    const auto r = lookup_client_names_blocking(resolver, ip("127.0.0.6"), true);
    CHECK(r.status == DnsStatus::answer);
    CHECK(r.names.empty());
    CHECK(sorted(r.unconfirmed) == std::vector<std::string>{"bad.a.test", "gone.a.test"});
    CHECK(check_ptr(r, "bad.a.test") == Reason::ptr_unconfirmed);
    // The same address without the option: the PTR name alone decides.
    CHECK(check_ptr(lookup_client_names_blocking(resolver, ip("127.0.0.6"), false), "bad.a.test") == Reason::none);
}

TEST_CASE("A forward lookup that fails temporarily makes the result temporary unless a name confirmed")
{
    UnboundServer server(reverse_config());
    Resolver resolver(options_for(server));
    const auto only = lookup_client_names_blocking(resolver, ip("127.0.0.7"), true);
    CHECK(only.status == DnsStatus::temporary);
    CHECK(only.unchecked == std::vector<std::string>{"host.66.0.0.127.in-addr.arpa"});
    CHECK(check_ptr(only, "host.66.0.0.127.in-addr.arpa") == Reason::dns_temporary);

    const auto mixed = lookup_client_names_blocking(resolver, ip("127.0.0.8"), true);
    CHECK(mixed.status == DnsStatus::answer);
    CHECK(mixed.names == std::vector<std::string>{"ok.a.test"});
    CHECK(mixed.unchecked == std::vector<std::string>{"host.66.0.0.127.in-addr.arpa"});
    CHECK(check_ptr(mixed, "ok.a.test") == Reason::none);
    CHECK(check_ptr(mixed, "host.66.0.0.127.in-addr.arpa") == Reason::dns_temporary);
}

TEST_CASE("A missing PTR record gives ptr_missing and a SERVFAIL gives dns_temporary")
{
    UnboundServer server(reverse_config());
    Resolver resolver(options_for(server));
    for (const bool confirm : {false, true}) {
        const auto missing = lookup_client_names_blocking(resolver, ip("127.0.0.99"), confirm);
        CHECK(missing.status == DnsStatus::negative);
        CHECK(check_ptr(missing, "mx.a.test") == Reason::ptr_missing);
        const auto failing = lookup_client_names_blocking(resolver, ip("127.0.0.66"), confirm);
        CHECK(failing.status == DnsStatus::temporary);
        CHECK(check_ptr(failing, "mx.a.test") == Reason::dns_temporary);
    }
}

TEST_CASE("A client PTR lookup that times out is dns_temporary")
{
    SilentPort silent;
    ResolverOptions o;
    o.forwarder = silent.forwarder();
    o.nodefault_zones = UnboundConfig{}.zones;
    o.timeout = 300ms;
    Resolver resolver(o);
    const auto start = std::chrono::steady_clock::now();
    const auto r = lookup_client_names_blocking(resolver, ip("127.0.0.2"), true);
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    CHECK(r.status == DnsStatus::temporary);
    CHECK(r.error == "timeout");
    CHECK(check_ptr(r, "mx.a.test") == Reason::dns_temporary);
}

TEST_CASE("Client name lookups run asynchronously, their callbacks from process()")
{
    UnboundServer server(reverse_config());
    Resolver resolver(options_for(server));
    std::optional<ReverseDnsResult> a, b, c;
    lookup_client_names(resolver, ip("127.0.0.2"), true, [&](ReverseDnsResult r) { a = std::move(r); });
    lookup_client_names(resolver, ip("127.0.0.5"), true, [&](ReverseDnsResult r) { b = std::move(r); });
    lookup_client_names(resolver, ip("127.0.0.99"), true, [&](ReverseDnsResult r) { c = std::move(r); });
    CHECK_FALSE(a);
    const auto give_up = std::chrono::steady_clock::now() + 20s;
    while (!(a && b && c) && std::chrono::steady_clock::now() < give_up) {
        pollfd pfd{resolver.fd(), POLLIN, 0};
        ::poll(&pfd, 1, 100);
        resolver.process();
    }
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(c);
    CHECK(check_ptr(*a, "mx.a.test") == Reason::none);
    CHECK(b->names == std::vector<std::string>{"one.a.test"});
    CHECK(check_ptr(*c, "mx.a.test") == Reason::ptr_missing);
    CHECK(resolver.pending() == 0);
}

TEST_CASE("The resolver the operator names answers everything: private and loopback PTRs pass without nodefault zones")
{
    // A site resolver serving its internal reverse zones (RFC 1918, loopback, ULA) and
    // a special-use forward zone: with dns.resolver set and no dns.nodefault-zone
    // lines, libunbound must ask it rather than answer NXDOMAIN from its own defaults.
    UnboundConfig c;
    c.zones = {"test.", "127.in-addr.arpa.", "10.in-addr.arpa.", "168.192.in-addr.arpa.", "16.172.in-addr.arpa.",
               "d.f.ip6.arpa."};
    c.local_data = {"mx.a.test. 300 IN A 127.0.0.2", "mx.a.test. 300 IN A 10.1.2.3",
                    "mx.a.test. 300 IN A 192.168.1.2", "mx.a.test. 300 IN A 172.16.0.9",
                    "mx.a.test. 300 IN AAAA fd00::2"};
    c.local_data_ptr = {"127.0.0.2 mx.a.test.", "10.1.2.3 mx.a.test.", "192.168.1.2 mx.a.test.",
                        "172.16.0.9 mx.a.test.", "fd00::2 mx.a.test."};
    UnboundServer server(c);
    ResolverOptions o;
    o.forwarder = server.forwarder();
    o.timeout = 10s;
    REQUIRE(o.nodefault_zones.empty());
    Resolver resolver(o);
    for (const char* address : {"10.1.2.3", "127.0.0.2", "192.168.1.2", "172.16.0.9", "fd00::2"}) {
        INFO(address);
        // Forward confirmation too: the PTR name is then looked up under test.
        const auto r = lookup_client_names_blocking(resolver, ip(address), true);
        CHECK(r.status == DnsStatus::answer);
        CHECK(r.names == std::vector<std::string>{"mx.a.test"});
        CHECK(check_ptr(r, "mx.a.test") == Reason::none);
    }
}
