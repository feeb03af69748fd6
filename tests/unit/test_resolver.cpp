// The resolver against a real unbound on loopback (tests/support/unbound_server), and
// its rdata parsers and SRV ordering on their own.
#include "amtp/errors.hpp"
#include "amtp/resolver.hpp"
#include "support/test_paths.hpp"
#include "support/unbound_server.hpp"

#include "../../core/src/dns_wire.hpp"

#include <catch2/catch.hpp>

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <thread>

using namespace amtp;
using amtp::test::SilentPort;
using amtp::test::UnboundConfig;
using amtp::test::UnboundServer;
using namespace std::chrono_literals;

namespace {

UnboundConfig dns_config()
{
    UnboundConfig c;
    c.local_data = {
        "mx.a.test. 300 IN A 127.0.0.2",
        "mx.a.test. 300 IN AAAA 2001:db8::2",
        "v4only.a.test. 300 IN A 127.0.0.3",
        "v6only.a.test. 300 IN AAAA 2001:db8::6",
        "txtonly.a.test. 300 IN TXT \"no addresses here\"",
        // A reverse name that exists but has no PTR: NODATA for a PTR query.
        "7.0.0.127.in-addr.arpa. 300 IN TXT \"not a PTR\"",
        "_amtp._tcp.a.test. 300 IN SRV 10 0 2626 mx.a.test.",
        "_amtp._tcp.prio.test. 300 IN SRV 20 5 26 second.prio.test.",
        "_amtp._tcp.prio.test. 300 IN SRV 10 5 26 first.prio.test.",
        "_amtp._tcp.prio.test. 300 IN SRV 30 5 26 third.prio.test.",
        "_amtp._tcp.none.test. 300 IN SRV 0 0 0 .",
        "nosrv.test. 300 IN A 127.0.0.10",
    };
    c.local_data_ptr = {
        "127.0.0.2 mx.a.test.",
        "2001:db8::2 mx.a.test.",
        "127.0.0.5 one.a.test.",
        "127.0.0.5 two.a.test.",
        "127.0.0.6 MiXeD.A.Test.",
    };
    c.servfail_zones = {"66.0.0.127.in-addr.arpa."};
    return c;
}

ResolverOptions options_for(const UnboundServer& server, std::chrono::milliseconds timeout = 10s)
{
    ResolverOptions o;
    o.forwarder = server.forwarder();
    o.nodefault_zones = server.zones();
    o.timeout = timeout;
    return o;
}

ResolverOptions silent_options(const SilentPort& port, std::chrono::milliseconds timeout)
{
    ResolverOptions o;
    o.forwarder = port.forwarder();
    o.nodefault_zones = UnboundConfig{}.zones;
    o.timeout = timeout;
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

std::string bytes(std::initializer_list<int> list)
{
    std::string s;
    for (const int b : list)
        s += static_cast<char>(b);
    return s;
}

// Drives the resolver as a host's event loop would: poll() on fd(), wake at the next
// deadline, process(). Returns when `done` holds or after `limit`.
template <typename Done>
bool drive(Resolver& resolver, Done done, std::chrono::milliseconds limit = 20s)
{
    const auto give_up = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= give_up)
            return false;
        auto wake = std::min(resolver.next_deadline(), give_up);
        const auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - now).count();
        pollfd pfd{resolver.fd(), POLLIN, 0};
        ::poll(&pfd, 1, static_cast<int>(std::max<long long>(0, wait)));
        resolver.process();
    }
    return true;
}

} // namespace

TEST_CASE("A PTR lookup of an IPv4 address returns its PTR name")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    const auto r = resolver.ptr(ip("127.0.0.2"));
    CHECK(r.status == DnsStatus::answer);
    CHECK(r.records == std::vector<std::string>{"mx.a.test"});
    CHECK_FALSE(r.secure);  // no trust anchor: nothing is validated
}

TEST_CASE("A PTR lookup of an IPv6 address returns its PTR name")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    const auto r = resolver.ptr(ip("2001:db8::2"));
    CHECK(r.status == DnsStatus::answer);
    CHECK(r.records == std::vector<std::string>{"mx.a.test"});
}

TEST_CASE("Every PTR record of an address is returned, normalised")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    const auto both = resolver.ptr(ip("127.0.0.5"));
    CHECK(both.status == DnsStatus::answer);
    CHECK(sorted(both.records) == std::vector<std::string>{"one.a.test", "two.a.test"});
    const auto mixed = resolver.ptr(ip("127.0.0.6"));
    CHECK(mixed.records == std::vector<std::string>{"mixed.a.test"});
}

TEST_CASE("An address without a PTR record (NXDOMAIN) is a negative answer, not a temporary one")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    const auto r = resolver.ptr(ip("127.0.0.99"));
    CHECK(r.status == DnsStatus::negative);
    CHECK(r.records.empty());
    CHECK(r.error == "NXDOMAIN");
}

TEST_CASE("A reverse name that exists without a PTR record (NODATA) is a negative answer")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    const auto r = resolver.ptr(ip("127.0.0.7"));
    CHECK(r.status == DnsStatus::negative);
    CHECK(r.error.find("NODATA") != std::string::npos);
}

TEST_CASE("A SERVFAIL answer is a temporary failure")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    const auto r = resolver.ptr(ip("127.0.0.66"));
    CHECK(r.status == DnsStatus::temporary);
    CHECK(r.error == "SERVFAIL");
    // Any name in a zone that fails validation, for any type.
    CHECK(resolver.addresses("host.66.0.0.127.in-addr.arpa").status == DnsStatus::temporary);
}

TEST_CASE("A PTR lookup that times out is temporary, never permanent")
{
    SilentPort silent;
    Resolver resolver(silent_options(silent, 300ms));
    const auto start = std::chrono::steady_clock::now();
    const auto r = resolver.ptr(ip("127.0.0.2"));
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(r.status == DnsStatus::temporary);
    CHECK(r.error == "timeout");
    CHECK(took >= 290ms);
    CHECK(took < 5s);
    CHECK(resolver.pending() == 0);
}

TEST_CASE("A lookup through a forwarder where nothing listens is temporary within its timeout")
{
    ResolverOptions o;
    o.forwarder = "127.0.0.1@" + std::to_string(amtp::test::unused_port());
    o.nodefault_zones = UnboundConfig{}.zones;
    o.timeout = 300ms;
    Resolver resolver(o);
    const auto start = std::chrono::steady_clock::now();
    const auto r = resolver.addresses("mx.a.test");
    CHECK(r.status == DnsStatus::temporary);
    CHECK(std::chrono::steady_clock::now() - start < 5s);
}

TEST_CASE("An async lookup past its deadline is failed by process() with a temporary result")
{
    SilentPort silent;
    Resolver resolver(silent_options(silent, 300ms));
    CHECK(resolver.next_deadline() == std::chrono::steady_clock::time_point::max());
    std::optional<SrvResult> srv;
    std::optional<DnsResult> addresses;
    const auto before = std::chrono::steady_clock::now();
    resolver.async_srv("a.test", [&](SrvResult r) { srv = std::move(r); });
    resolver.async_addresses("mx.a.test", [&](DnsResult r) { addresses = std::move(r); });
    CHECK(resolver.pending() == 2);
    CHECK(resolver.next_deadline() >= before + 300ms);
    CHECK(resolver.next_deadline() <= std::chrono::steady_clock::now() + 300ms);
    REQUIRE(drive(resolver, [&] { return srv && addresses; }));
    CHECK(srv->status == DnsStatus::temporary);
    CHECK(srv->error == "timeout");
    CHECK(addresses->status == DnsStatus::temporary);
    CHECK(resolver.pending() == 0);
    CHECK(resolver.next_deadline() == std::chrono::steady_clock::time_point::max());
}

TEST_CASE("An address lookup combines A and AAAA records into one answer")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    const auto r = resolver.addresses("mx.a.test");
    CHECK(r.status == DnsStatus::answer);
    CHECK(r.records == std::vector<std::string>{"127.0.0.2", "2001:db8::2"});
    CHECK_FALSE(r.partial);
}

TEST_CASE("An address lookup answers when only one of A and AAAA has records")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    const auto v4 = resolver.addresses("v4only.a.test");
    CHECK(v4.status == DnsStatus::answer);
    CHECK(v4.records == std::vector<std::string>{"127.0.0.3"});
    const auto v6 = resolver.addresses("V6ONLY.a.test.");
    CHECK(v6.status == DnsStatus::answer);
    CHECK(v6.records == std::vector<std::string>{"2001:db8::6"});
}

TEST_CASE("A name without address records (NXDOMAIN or NODATA) is a negative answer")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    CHECK(resolver.addresses("nothing.a.test").status == DnsStatus::negative);
    CHECK(resolver.addresses("txtonly.a.test").status == DnsStatus::negative);
}

TEST_CASE("A and AAAA combine: an answer wins, then a temporary failure, then negative")
{
    const auto make = [](DnsStatus status, std::vector<std::string> records = {}) {
        DnsResult r;
        r.status = status;
        r.records = std::move(records);
        r.error = status == DnsStatus::answer ? "" : dns_status_name(status);
        return r;
    };
    using dns_wire::combine_addresses;
    const auto a_only = combine_addresses(make(DnsStatus::answer, {"192.0.2.1"}), make(DnsStatus::temporary));
    CHECK(a_only.status == DnsStatus::answer);
    CHECK(a_only.records == std::vector<std::string>{"192.0.2.1"});
    CHECK(a_only.partial);  // the AAAA side might have held another address
    const auto aaaa_only = combine_addresses(make(DnsStatus::negative), make(DnsStatus::answer, {"2001:db8::1"}));
    CHECK(aaaa_only.status == DnsStatus::answer);
    CHECK_FALSE(aaaa_only.partial);
    CHECK(combine_addresses(make(DnsStatus::temporary), make(DnsStatus::negative)).status == DnsStatus::temporary);
    CHECK(combine_addresses(make(DnsStatus::negative), make(DnsStatus::temporary)).status == DnsStatus::temporary);
    const auto none = combine_addresses(make(DnsStatus::negative), make(DnsStatus::negative));
    CHECK(none.status == DnsStatus::negative);
    CHECK(none.error == "A: negative; AAAA: negative");
}

TEST_CASE("An invalid host name is a negative answer, delivered from process()")
{
    SilentPort silent;  // never asked: the name is refused before any query
    Resolver resolver(silent_options(silent, 10s));
    std::optional<DnsResult> r;
    resolver.async_addresses("not a host!", [&](DnsResult x) { r = std::move(x); });
    CHECK_FALSE(r);
    CHECK(resolver.pending() == 1);
    const auto due = resolver.next_deadline();
    CHECK(due <= std::chrono::steady_clock::now());  // a timer host calls process() now
    resolver.process();
    REQUIRE(r);
    CHECK(r->status == DnsStatus::negative);
    CHECK(resolver.srv("under_score..test").status == DnsStatus::negative);
}

TEST_CASE("SRV targets come back in priority order")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    const auto r = resolver.srv("prio.test");
    REQUIRE(r.status == DnsStatus::answer);
    REQUIRE(r.targets.size() == 3);
    CHECK(r.targets[0].target == "first.prio.test");
    CHECK(r.targets[0].priority == 10);
    CHECK(r.targets[0].weight == 5);
    CHECK(r.targets[0].port == 26);
    CHECK(r.targets[1].target == "second.prio.test");
    CHECK(r.targets[2].target == "third.prio.test");
    const auto single = resolver.srv("A.Test.");
    REQUIRE(single.targets.size() == 1);
    CHECK(single.targets[0].target == "mx.a.test");
    CHECK(single.targets[0].port == 2626);
}

TEST_CASE("A lone SRV target of \".\" means the service is not available: negative")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    const auto r = resolver.srv("none.test");
    CHECK(r.status == DnsStatus::negative);
    CHECK(r.targets.empty());
    CHECK(r.error.find("not available") != std::string::npos);
}

TEST_CASE("A domain without SRV records is a negative answer")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    CHECK(resolver.srv("nosrv.test").status == DnsStatus::negative);  // NODATA
    CHECK(resolver.srv("missing.test").status == DnsStatus::negative);  // NXDOMAIN
}

TEST_CASE("Several lookups in flight complete through a poll() loop on fd(), on the caller's thread")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    const auto caller = std::this_thread::get_id();
    std::map<std::string, DnsResult> results;
    std::optional<SrvResult> srv;
    bool foreign_thread = false;
    const auto keep = [&](std::string key) {
        return [&, key](DnsResult r) {
            foreign_thread |= std::this_thread::get_id() != caller;
            results[key] = std::move(r);
        };
    };
    resolver.async_ptr(ip("127.0.0.2"), keep("ptr2"));
    resolver.async_ptr(ip("127.0.0.5"), keep("ptr5"));
    resolver.async_ptr(ip("127.0.0.99"), keep("ptr99"));
    resolver.async_ptr(ip("127.0.0.66"), keep("ptr66"));
    resolver.async_addresses("mx.a.test", keep("mx"));
    resolver.async_srv("prio.test", [&](SrvResult r) {
        foreign_thread |= std::this_thread::get_id() != caller;
        srv = std::move(r);
    });
    CHECK(resolver.pending() == 6);
    REQUIRE(drive(resolver, [&] { return results.size() == 5 && srv; }));
    CHECK_FALSE(foreign_thread);
    CHECK(resolver.pending() == 0);
    CHECK(results["ptr2"].records == std::vector<std::string>{"mx.a.test"});
    CHECK(results["ptr5"].records.size() == 2);
    CHECK(results["ptr99"].status == DnsStatus::negative);
    CHECK(results["ptr66"].status == DnsStatus::temporary);
    CHECK(results["mx"].records.size() == 2);
    CHECK(srv->targets.size() == 3);
}

TEST_CASE("Callbacks never run before process() is called")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    int calls = 0;
    resolver.async_ptr(ip("127.0.0.2"), [&](DnsResult) { ++calls; });
    resolver.async_addresses("mx.a.test", [&](DnsResult) { ++calls; });
    resolver.async_srv("a.test", [&](SrvResult) { ++calls; });
    // Wait until the answers sit in the pipe, without processing them.
    pollfd pfd{resolver.fd(), POLLIN, 0};
    REQUIRE(::poll(&pfd, 1, 10000) == 1);
    std::this_thread::sleep_for(200ms);
    CHECK(calls == 0);
    CHECK(resolver.pending() == 3);
    REQUIRE(drive(resolver, [&] { return calls == 3; }));
}

TEST_CASE("A callback may start further lookups")
{
    UnboundServer server(dns_config());
    Resolver resolver(options_for(server));
    std::optional<DnsResult> forward;
    resolver.async_ptr(ip("127.0.0.2"), [&](DnsResult ptr) {
        REQUIRE(ptr.records.size() == 1);
        resolver.async_addresses(ptr.records[0], [&](DnsResult r) { forward = std::move(r); });
    });
    REQUIRE(drive(resolver, [&] { return forward.has_value(); }));
    CHECK(forward->records.front() == "127.0.0.2");
}

TEST_CASE("Destroying the resolver with lookups pending frees them without running their callbacks")
{
    auto token = std::make_shared<int>(0);  // counts the callbacks still held
    int calls = 0;
    SECTION("queries still waiting for an answer")
    {
        SilentPort silent;
        {
            Resolver resolver(silent_options(silent, 10s));
            resolver.async_ptr(ip("127.0.0.2"), [&, token](DnsResult) { ++calls; });
            resolver.async_addresses("mx.a.test", [&, token](DnsResult) { ++calls; });
            resolver.async_srv("a.test", [&, token](SrvResult) { ++calls; });
            resolver.async_addresses("not a name!", [&, token](DnsResult) { ++calls; });
            CHECK(token.use_count() == 5);
        }
    }
    SECTION("answers received but not processed")
    {
        UnboundServer server(dns_config());
        {
            Resolver resolver(options_for(server));
            resolver.async_ptr(ip("127.0.0.2"), [&, token](DnsResult) { ++calls; });
            resolver.async_addresses("mx.a.test", [&, token](DnsResult) { ++calls; });
            pollfd pfd{resolver.fd(), POLLIN, 0};
            REQUIRE(::poll(&pfd, 1, 10000) == 1);
            std::this_thread::sleep_for(100ms);
        }
    }
    SECTION("a timed-out query whose answer may still come")
    {
        SilentPort silent;
        {
            Resolver resolver(silent_options(silent, 50ms));
            std::optional<DnsResult> r;
            resolver.async_ptr(ip("127.0.0.2"), [&, token](DnsResult x) { r = std::move(x); });
            REQUIRE(drive(resolver, [&] { return r.has_value(); }));
            CHECK(r->status == DnsStatus::temporary);
            resolver.async_ptr(ip("127.0.0.3"), [&, token](DnsResult) { ++calls; });
        }
    }
    CHECK(calls == 0);
    CHECK(token.use_count() == 1);  // every callback (and its request record) was freed
}

TEST_CASE("A bad forwarder string is a configuration error")
{
    ResolverOptions o;
    o.forwarder = "not an address";
    CHECK_THROWS_AS(Resolver(o), ConfigError);
    try {
        Resolver resolver(o);
    } catch (const ConfigError& e) {
        CHECK(e.key() == "dns.resolver");
        CHECK(std::string(e.what()).find("not an address") != std::string::npos);
    }
}

TEST_CASE("An unreadable trust anchor file is a configuration error naming the file")
{
    ResolverOptions o;
    o.forwarder = "127.0.0.1@53";
    o.trust_anchor_file = amtp::test::fresh_dir("resolver-ta") + "/missing.key";
    CHECK_THROWS_AS(Resolver(o), ConfigError);
    try {
        Resolver resolver(o);
    } catch (const ConfigError& e) {
        CHECK(e.file() == o.trust_anchor_file);
        CHECK(std::string(e.what()).find(o.trust_anchor_file) != std::string::npos);
    }
    // Readable but not a trust anchor: caught at start-up, not at the first lookup.
    o.trust_anchor_file = amtp::test::write_file(amtp::test::fresh_dir("resolver-ta") + "/bad.key",
                                                 "this is not a trust anchor\n");
    CHECK_THROWS_AS(Resolver(o), ConfigError);
}

TEST_CASE("A usable trust anchor file is accepted")
{
    ResolverOptions o;
    o.forwarder = "127.0.0.1@53";
    o.trust_anchor_file = amtp::test::write_file(
        amtp::test::fresh_dir("resolver-ta") + "/test.key",
        "test. DS 12345 8 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE0C7C8D5C2D6A1C1D2E3F4A5B\n");
    CHECK_NOTHROW(Resolver(o));
}

TEST_CASE("A nodefault zone that is not a domain name is a configuration error")
{
    ResolverOptions o;
    o.forwarder = "127.0.0.1@53";
    o.nodefault_zones = {"test.", "bad zone"};
    CHECK_THROWS_AS(Resolver(o), ConfigError);
}

TEST_CASE("A DNS timeout that is not positive is a configuration error")
{
    ResolverOptions o;
    o.forwarder = "127.0.0.1@53";
    o.timeout = 0ms;
    CHECK_THROWS_AS(Resolver(o), ConfigError);
}

TEST_CASE("The resolver the operator names answers everything: the reserved test zone needs no nodefault zone")
{
    UnboundServer server(dns_config());
    ResolverOptions o = options_for(server);
    o.nodefault_zones.clear();
    Resolver resolver(o);
    // Before, libunbound answered the built-in test. zone itself with NXDOMAIN.
    const auto r = resolver.addresses("mx.a.test");
    CHECK(r.status == DnsStatus::answer);
    CHECK(resolver.ptr(ip("127.0.0.2")).status == DnsStatus::answer);
}

// --- rdata parsers ---------------------------------------------------------------

TEST_CASE("PTR rdata is read as one uncompressed domain name")
{
    using dns_wire::parse_ptr;
    CHECK(parse_ptr(bytes({2, 'm', 'x', 1, 'a', 4, 't', 'e', 's', 't', 0})) == std::optional<std::string>("mx.a.test"));
    CHECK(parse_ptr(bytes({0})) == std::optional<std::string>("."));
    CHECK_FALSE(parse_ptr(""));
    CHECK_FALSE(parse_ptr(bytes({2, 'm', 'x'})));                      // no terminating root label
    CHECK_FALSE(parse_ptr(bytes({5, 'm', 'x', 0})));                   // label longer than the data
    CHECK_FALSE(parse_ptr(bytes({2, 'm', 'x', 0, 0})));                // trailing bytes
    CHECK_FALSE(parse_ptr(bytes({0xc0, 0x0c})));                       // compression pointer
    CHECK_FALSE(parse_ptr(bytes({0x41, 'x', 0})));                     // extended label type
    CHECK_FALSE(parse_ptr(bytes({3, 'a', '.', 'b', 4, 't', 'e', 's', 't', 0})));  // dot inside a label
    CHECK_FALSE(parse_ptr(bytes({2, 'a', 0, 0})));                     // NUL inside a label
    CHECK_FALSE(parse_ptr(bytes({2, 'a', '\n', 0})));
    CHECK_FALSE(parse_ptr(bytes({2, 0xc3, 0xa9, 0})));                 // raw UTF-8
    // 255 octets is the limit; 256 is refused.
    std::string ok, too_long;
    for (int i = 0; i < 4; ++i)
        ok += std::string(1, 62) + std::string(62, 'a');  // 4 * 63 = 252
    ok += bytes({1, 'b', 0});                                 // 255
    CHECK(parse_ptr(ok));
    too_long = ok.substr(0, 252) + bytes({2, 'b', 'b', 0});  // 256
    CHECK_FALSE(parse_ptr(too_long));
}

TEST_CASE("A and AAAA rdata must have exactly 4 and 16 octets")
{
    using dns_wire::parse_a;
    using dns_wire::parse_aaaa;
    CHECK(parse_a(bytes({127, 0, 0, 2})) == std::optional<std::string>("127.0.0.2"));
    CHECK_FALSE(parse_a(bytes({127, 0, 0})));
    CHECK_FALSE(parse_a(bytes({127, 0, 0, 2, 1})));
    CHECK_FALSE(parse_a(""));
    std::string v6 = bytes({0x20, 0x01, 0x0d, 0xb8}) + std::string(11, '\0') + bytes({2});
    CHECK(parse_aaaa(v6) == std::optional<std::string>("2001:db8::2"));
    CHECK_FALSE(parse_aaaa(v6.substr(0, 15)));
    CHECK_FALSE(parse_aaaa(v6 + "x"));
}

TEST_CASE("SRV rdata is read field by field with bounds checks")
{
    using dns_wire::parse_srv;
    const auto r = parse_srv(bytes({0, 10, 0, 5, 0x0a, 0x42, 2, 'm', 'x', 4, 't', 'e', 's', 't', 0}));
    REQUIRE(r);
    CHECK(r->priority == 10);
    CHECK(r->weight == 5);
    CHECK(r->port == 2626);
    CHECK(r->target == "mx.test");
    const auto none = parse_srv(bytes({0, 0, 0, 0, 0, 0, 0}));
    REQUIRE(none);
    CHECK(none->target == ".");
    CHECK_FALSE(parse_srv(bytes({0, 10, 0, 5, 0x0a})));           // fields cut short
    CHECK_FALSE(parse_srv(bytes({0, 10, 0, 5, 0x0a, 0x42})));     // no target
    CHECK_FALSE(parse_srv(bytes({0, 10, 0, 5, 0x0a, 0x42, 3, 'm', 'x', 0})));
    CHECK_FALSE(parse_srv(bytes({0, 10, 0, 5, 0x0a, 0x42, 0, 0}))); // trailing byte
}

TEST_CASE("Malformed rdata never crashes the parsers")
{
    // Random and truncated inputs: the parsers may refuse, but never read out of bounds
    // (run under AddressSanitizer to make that a hard failure).
    std::mt19937 rng(2782);
    std::uniform_int_distribution<int> byte(0, 255), length(0, 300);
    const std::string valid_srv = bytes({0, 10, 0, 5, 0x0a, 0x42, 2, 'm', 'x', 4, 't', 'e', 's', 't', 0});
    for (int round = 0; round < 20000; ++round) {
        std::string data(static_cast<std::size_t>(length(rng)), '\0');
        for (auto& c : data)
            c = static_cast<char>(byte(rng) < 200 ? byte(rng) % 64 : byte(rng));  // many plausible lengths
        // Exact-size copies, so that ASan sees any read past the end.
        const auto exact = std::make_unique<char[]>(data.size() + 1);
        std::copy(data.begin(), data.end(), exact.get());
        const std::string_view view(exact.get(), data.size());
        (void)dns_wire::parse_ptr(view);
        (void)dns_wire::parse_srv(view);
        (void)dns_wire::parse_a(view);
        (void)dns_wire::parse_aaaa(view);
        std::size_t offset = data.empty() ? 0 : static_cast<std::size_t>(byte(rng)) % data.size();
        if (auto name = dns_wire::read_name(view, offset))
            CHECK(offset <= data.size());
    }
    for (std::size_t n = 0; n < valid_srv.size(); ++n)
        CHECK_FALSE(dns_wire::parse_srv(valid_srv.substr(0, n)));
}

// --- RFC 2782 ordering ---------------------------------------------------------

namespace {
SrvRecord srv(std::uint16_t priority, std::uint16_t weight, std::string target)
{
    SrvRecord r;
    r.priority = priority;
    r.weight = weight;
    r.port = 26;
    r.target = std::move(target);
    return r;
}

std::vector<std::string> targets(const std::vector<SrvRecord>& records)
{
    std::vector<std::string> out;
    for (const auto& r : records)
        out.push_back(r.target);
    return out;
}
} // namespace

TEST_CASE("order_srv sorts targets by priority, lowest first")
{
    const auto ordered = order_srv({srv(30, 1, "c"), srv(10, 1, "a"), srv(20, 1, "b")},
                                   [](std::uint32_t) { return 0u; });
    CHECK(targets(ordered) == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("order_srv puts weight-0 entries first and picks the first running sum >= the number drawn")
{
    // One priority: C(30), Z(0), B(10) as they came. RFC 2782: Z first (weight 0), then
    // C, B in their order; running sums Z 0, C 30, B 40.
    std::vector<std::uint32_t> bounds;
    std::vector<std::uint32_t> draws;
    std::size_t next = 0;
    const auto scripted = [&](std::uint32_t bound) {
        bounds.push_back(bound);
        return draws.at(next++);
    };
    SECTION("a draw of 0 picks the weight-0 entry")
    {
        draws = {0, 31, 7};
        const auto ordered = order_srv({srv(5, 30, "C"), srv(5, 0, "Z"), srv(5, 10, "B")}, scripted);
        CHECK(targets(ordered) == std::vector<std::string>{"Z", "B", "C"});
        // Sums over the not yet ordered entries: 40, then C+B 40, then C 30.
        CHECK(bounds == std::vector<std::uint32_t>{40, 40, 30});
    }
    SECTION("a draw of 1 skips the weight-0 entry")
    {
        draws = {1, 0, 0};
        const auto ordered = order_srv({srv(5, 30, "C"), srv(5, 0, "Z"), srv(5, 10, "B")}, scripted);
        CHECK(targets(ordered) == std::vector<std::string>{"C", "Z", "B"});
        CHECK(bounds == std::vector<std::uint32_t>{40, 10, 10});
    }
    SECTION("a draw equal to the sum picks the last entry")
    {
        draws = {40, 30, 0};
        const auto ordered = order_srv({srv(5, 30, "C"), srv(5, 0, "Z"), srv(5, 10, "B")}, scripted);
        CHECK(targets(ordered) == std::vector<std::string>{"B", "C", "Z"});
    }
    SECTION("priorities are ordered separately")
    {
        draws = {0, 0, 0, 0};
        const auto ordered =
            order_srv({srv(2, 0, "late"), srv(1, 5, "x"), srv(1, 5, "y"), srv(3, 9, "last")}, scripted);
        CHECK(targets(ordered) == std::vector<std::string>{"x", "y", "late", "last"});
        CHECK(bounds == std::vector<std::uint32_t>{10, 5, 0, 9});
    }
}

TEST_CASE("order_srv picks the first target in proportion to its weight")
{
    std::mt19937 rng(42);
    const auto random = [&rng](std::uint32_t bound) {
        return std::uniform_int_distribution<std::uint32_t>(0, bound)(rng);
    };
    int heavy_first = 0;
    const int rounds = 20000;
    for (int i = 0; i < rounds; ++i) {
        const auto ordered = order_srv({srv(1, 10, "light"), srv(1, 30, "heavy")}, random);
        REQUIRE(ordered.size() == 2);
        heavy_first += ordered.front().target == "heavy";
    }
    // Running sums light 10, heavy 40 over draws 0..40: heavy is first for 30 of 41.
    const double share = static_cast<double>(heavy_first) / rounds;
    CHECK(share > 30.0 / 41 - 0.02);
    CHECK(share < 30.0 / 41 + 0.02);
}
