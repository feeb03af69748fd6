#include "amtp/resolver.hpp"

#include "amtp/errors.hpp"
#include "amtp/handles.hpp"
#include "amtp/names.hpp"
#include "amtp/reverse_dns.hpp"
#include "dns_wire.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <utility>

namespace amtp {

// ---------------------------------------------------------------------------------
// Wire format
namespace dns_wire {

std::optional<std::string> read_name(std::string_view rdata, std::size_t& offset)
{
    std::size_t pos = offset;
    std::size_t wire_length = 0;  // RFC 1035: at most 255 octets, length octets included
    std::string text;
    for (;;) {
        if (pos >= rdata.size())
            return std::nullopt;
        const auto length = static_cast<unsigned char>(rdata[pos]);
        if ((length & 0xc0) != 0)  // compression pointer or extended label type
            return std::nullopt;
        wire_length += 1 + length;
        if (wire_length > 255)
            return std::nullopt;
        ++pos;
        if (length == 0)
            break;
        if (rdata.size() - pos < length)
            return std::nullopt;
        if (!text.empty())
            text += '.';
        for (const char ch : rdata.substr(pos, length)) {
            const auto c = static_cast<unsigned char>(ch);
            if (c <= 0x20 || c >= 0x7f || c == '.' || c == '\\')
                return std::nullopt;
            text += ch;
        }
        pos += length;
    }
    offset = pos;
    return text.empty() ? std::string(".") : text;
}

std::optional<std::string> parse_ptr(std::string_view rdata)
{
    std::size_t offset = 0;
    auto name = read_name(rdata, offset);
    if (!name || offset != rdata.size())
        return std::nullopt;
    return name;
}

namespace {
std::optional<std::string> address_text(int family, std::string_view rdata, std::size_t size)
{
    if (rdata.size() != size)
        return std::nullopt;
    char text[INET6_ADDRSTRLEN] = {};
    if (!inet_ntop(family, rdata.data(), text, sizeof text))
        return std::nullopt;
    return std::string(text);
}

std::uint16_t read_u16(std::string_view data, std::size_t at)
{
    return static_cast<std::uint16_t>((static_cast<unsigned char>(data[at]) << 8) |
                                      static_cast<unsigned char>(data[at + 1]));
}
} // namespace

std::optional<std::string> parse_a(std::string_view rdata)
{
    return address_text(AF_INET, rdata, 4);
}

std::optional<std::string> parse_aaaa(std::string_view rdata)
{
    return address_text(AF_INET6, rdata, 16);
}

std::optional<SrvRecord> parse_srv(std::string_view rdata)
{
    if (rdata.size() < 7)  // three 16-bit fields and at least the root name
        return std::nullopt;
    SrvRecord record;
    record.priority = read_u16(rdata, 0);
    record.weight = read_u16(rdata, 2);
    record.port = read_u16(rdata, 4);
    std::size_t offset = 6;
    auto target = read_name(rdata, offset);
    if (!target || offset != rdata.size())
        return std::nullopt;
    record.target = std::move(*target);
    return record;
}

} // namespace dns_wire

// ---------------------------------------------------------------------------------
// Classification and parsing of one libunbound result

const char* dns_status_name(DnsStatus status)
{
    switch (status) {
    case DnsStatus::answer:
        return "answer";
    case DnsStatus::negative:
        return "negative";
    case DnsStatus::temporary:
        return "temporary";
    }
    return "temporary";
}

namespace {

using Clock = std::chrono::steady_clock;

constexpr int rcode_noerror = 0;
constexpr int rcode_servfail = 2;
constexpr int rcode_nxdomain = 3;
constexpr int rcode_refused = 5;

// A name with the trailing-dot form libunbound accepts for its configuration.
std::string absolute(const std::string& name) { return name + "."; }

std::string rcode_text(int rcode)
{
    switch (rcode) {
    case rcode_servfail:
        return "SERVFAIL";
    case rcode_refused:
        return "REFUSED";
    default:
        return "rcode " + std::to_string(rcode);
    }
}

// How one libunbound query ended, before its record data is read.
struct Outcome {
    DnsStatus status = DnsStatus::temporary;
    std::string error;
    bool secure = false;
    UbResultPtr result;  // set when status is answer
};

Outcome temporary_outcome(std::string error)
{
    Outcome out;
    out.error = std::move(error);
    return out;
}

Outcome negative_outcome(std::string error)
{
    Outcome out;
    out.status = DnsStatus::negative;
    out.error = std::move(error);
    return out;
}

// Only NXDOMAIN and NODATA are permanent: everything else that is not data (SERVFAIL,
// REFUSED, a failed validation, a local error) may be different a minute later.
Outcome classify(int err, UbResultPtr result)
{
    if (err != 0)
        return temporary_outcome(std::string("resolver error: ") + ub_strerror(err));
    if (!result)
        return temporary_outcome("resolver returned no result");
    Outcome out;
    out.secure = result->secure != 0;
    if (result->bogus) {
        out.error = "DNSSEC validation failed";
        if (result->why_bogus)
            out.error += std::string(": ") + result->why_bogus;
        return out;
    }
    if (result->havedata) {
        out.status = DnsStatus::answer;
        out.result = std::move(result);
        return out;
    }
    if (result->rcode == rcode_nxdomain || result->nxdomain) {
        out.status = DnsStatus::negative;
        out.error = "NXDOMAIN";
    } else if (result->rcode == rcode_noerror) {
        out.status = DnsStatus::negative;
        out.error = "no record of this type (NODATA)";
    } else {
        out.error = rcode_text(result->rcode);
    }
    return out;
}

// Every rdata item of an answer, as views into the result (valid while it lives).
std::vector<std::string_view> rdata_items(const ub_result& result)
{
    std::vector<std::string_view> items;
    if (!result.data || !result.len)
        return items;
    for (std::size_t i = 0; result.data[i]; ++i) {
        if (result.len[i] < 0)
            continue;
        items.emplace_back(result.data[i], static_cast<std::size_t>(result.len[i]));
    }
    return items;
}

enum class RecordKind { ptr, a, aaaa };

// An answer's records as text: names normalised (invalid ones dropped, they cannot
// identify anyone), addresses as text. No usable record at all is a negative answer.
DnsResult to_dns_result(Outcome outcome, RecordKind kind)
{
    DnsResult out;
    out.status = outcome.status;
    out.secure = outcome.secure;
    out.error = std::move(outcome.error);
    if (outcome.status != DnsStatus::answer)
        return out;
    for (const auto rdata : rdata_items(*outcome.result)) {
        std::optional<std::string> text;
        switch (kind) {
        case RecordKind::ptr:
            if (auto name = dns_wire::parse_ptr(rdata))
                text = normalize_host_name(*name);
            break;
        case RecordKind::a:
            text = dns_wire::parse_a(rdata);
            break;
        case RecordKind::aaaa:
            text = dns_wire::parse_aaaa(rdata);
            break;
        }
        if (text && std::find(out.records.begin(), out.records.end(), *text) == out.records.end())
            out.records.push_back(std::move(*text));
    }
    if (out.records.empty()) {
        out.status = DnsStatus::negative;
        out.error = "no usable record in the answer";
    }
    return out;
}

} // namespace

// A and AAAA as one answer: either family's data is an answer; a temporary failure
// of one only counts when the other has nothing.
DnsResult dns_wire::combine_addresses(DnsResult a, DnsResult aaaa)
{
    DnsResult out;
    const bool any_answer = a.status == DnsStatus::answer || aaaa.status == DnsStatus::answer;
    const bool any_temporary = a.status == DnsStatus::temporary || aaaa.status == DnsStatus::temporary;
    if (any_answer) {
        out.status = DnsStatus::answer;
        out.records = std::move(a.records);
        out.records.insert(out.records.end(), aaaa.records.begin(), aaaa.records.end());
        out.partial = any_temporary;
    } else {
        out.status = any_temporary ? DnsStatus::temporary : DnsStatus::negative;
    }
    out.secure = a.secure && aaaa.secure;
    if (a.status != DnsStatus::answer || aaaa.status != DnsStatus::answer) {
        if (a.status != DnsStatus::answer)
            out.error = "A: " + a.error;
        if (aaaa.status != DnsStatus::answer)
            out.error += (out.error.empty() ? "" : "; ") + std::string("AAAA: ") + aaaa.error;
    }
    return out;
}

namespace {

SrvResult to_srv_result(Outcome outcome, std::mt19937& rng)
{
    SrvResult out;
    out.status = outcome.status;
    out.error = std::move(outcome.error);
    if (outcome.status != DnsStatus::answer)
        return out;
    const auto items = rdata_items(*outcome.result);
    std::vector<SrvRecord> records;
    bool no_service = false;
    for (const auto rdata : items) {
        auto record = dns_wire::parse_srv(rdata);
        if (!record)
            continue;
        // RFC 2782: a lone "." target says the service is decidedly not available;
        // beside real targets it means nothing and is skipped.
        if (record->target == ".") {
            no_service = items.size() == 1;
            continue;
        }
        auto target = normalize_host_name(record->target);
        if (!target)
            continue;
        record->target = std::move(*target);
        records.push_back(std::move(*record));
    }
    if (records.empty()) {
        out.status = DnsStatus::negative;
        out.error = no_service ? "service decidedly not available (SRV target \".\")"
                               : "no usable SRV record in the answer";
        return out;
    }
    out.targets = order_srv(std::move(records), [&rng](std::uint32_t bound) {
        return std::uniform_int_distribution<std::uint32_t>(0, bound)(rng);
    });
    return out;
}

} // namespace

// ---------------------------------------------------------------------------------
// RFC 2782 ordering

std::vector<SrvRecord> order_srv(std::vector<SrvRecord> records,
                                 const std::function<std::uint32_t(std::uint32_t bound)>& random)
{
    // Stable, so that equal entries keep the order they came in (deterministic tests).
    std::stable_sort(records.begin(), records.end(),
                     [](const SrvRecord& x, const SrvRecord& y) { return x.priority < y.priority; });
    std::vector<SrvRecord> ordered;
    ordered.reserve(records.size());
    auto group_begin = records.begin();
    while (group_begin != records.end()) {
        const auto group_end = std::find_if(group_begin, records.end(), [&](const SrvRecord& r) {
            return r.priority != group_begin->priority;
        });
        // "all those with weight 0 are placed at the beginning of the list"
        std::vector<SrvRecord> unordered(group_begin, group_end);
        std::stable_partition(unordered.begin(), unordered.end(),
                              [](const SrvRecord& r) { return r.weight == 0; });
        while (!unordered.empty()) {
            // A DNS message cannot hold enough records for the 16-bit weights to
            // overflow 32 bits; saturate anyway rather than wrap for other callers.
            std::uint64_t sum = 0;
            for (const auto& r : unordered)
                sum += r.weight;
            const auto bound = static_cast<std::uint32_t>(
                std::min<std::uint64_t>(sum, std::numeric_limits<std::uint32_t>::max()));
            const std::uint64_t pick = std::min<std::uint64_t>(random(bound), bound);
            // The first entry whose running sum is >= the number drawn.
            std::size_t chosen = unordered.size() - 1;
            std::uint64_t running = 0;
            for (std::size_t i = 0; i < unordered.size(); ++i) {
                running += unordered[i].weight;
                if (running >= pick) {
                    chosen = i;
                    break;
                }
            }
            ordered.push_back(std::move(unordered[chosen]));
            unordered.erase(unordered.begin() + static_cast<std::ptrdiff_t>(chosen));
        }
        group_begin = group_end;
    }
    return ordered;
}

// ---------------------------------------------------------------------------------
// The resolver

struct Resolver::Impl {
    using Handler = std::function<void(Outcome)>;

    // One ub_resolve_async query. Heap-owned; while libunbound may still call back
    // for it, the pointer lives in libunbound (as the callback's void*) and in
    // `in_flight` for cancellation, and on_result takes ownership back.
    struct Query {
        Impl* owner = nullptr;
        std::uint64_t seq = 0;
        int async_id = 0;
        Clock::time_point deadline;
        Handler handler;
        bool abandoned = false;  // reported as timed out, but ub_cancel failed
    };

    // A finished query whose handler is yet to run, from process().
    struct Ready {
        Handler handler;
        Outcome outcome;
    };

    UbCtxPtr ctx;
    std::chrono::milliseconds timeout{0};
    std::map<std::uint64_t, Query*> in_flight;  // by issue order, so expiry is in order
    std::deque<Ready> ready;
    std::uint64_t next_seq = 0;
    std::size_t lookups = 0;  // user-level lookups whose callback has not run
    std::mt19937 rng{std::random_device{}()};

    ~Impl()
    {
        // Cancel, then delete the context (it never calls back for outstanding
        // queries), then free what libunbound will no longer hand back.
        for (const auto& entry : in_flight)
            (void)ub_cancel(ctx.get(), entry.second->async_id);
        ctx.reset();
        for (const auto& entry : in_flight)
            std::unique_ptr<Query> owned(entry.second);
        in_flight.clear();
    }

    // Runs inside ub_process(), on the caller's thread: only records the outcome, so
    // that no user code runs inside libunbound (user code may start lookups).
    static void on_result(void* data, int err, ub_result* raw)
    {
        UbResultPtr result(raw);
        std::unique_ptr<Query> query(static_cast<Query*>(data));
        Impl& impl = *query->owner;
        impl.in_flight.erase(query->seq);
        if (query->abandoned)  // its timeout was reported already
            return;
        impl.ready.push_back(Ready{std::move(query->handler), classify(err, std::move(result))});
    }

    void start(int rrtype, const std::string& name, Clock::time_point deadline, Handler handler)
    {
        auto query = std::make_unique<Query>();
        query->owner = this;
        query->seq = next_seq++;
        query->deadline = deadline;
        query->handler = std::move(handler);
        int id = 0;
        const int rc = ub_resolve_async(ctx.get(), name.c_str(), rrtype, dns_wire::class_in,
                                        query.get(), &Impl::on_result, &id);
        if (rc != 0) {
            // Reported from process() like any other outcome, never from here.
            ready.push_back(Ready{std::move(query->handler),
                                  temporary_outcome(std::string("resolver error: ") + ub_strerror(rc))});
            return;
        }
        query->async_id = id;
        in_flight.emplace(query->seq, query.get());
        (void)query.release();  // owned by libunbound's callback (or the destructor) now
    }

    // An outcome known without asking (an invalid name), delivered from process().
    void finish_later(Handler handler, Outcome outcome)
    {
        ready.push_back(Ready{std::move(handler), std::move(outcome)});
    }

    void expire(Clock::time_point now)
    {
        for (auto it = in_flight.begin(); it != in_flight.end();) {
            Query* query = it->second;
            if (query->abandoned || query->deadline > now) {
                ++it;
                continue;
            }
            ready.push_back(Ready{std::move(query->handler), temporary_outcome("timeout")});
            if (ub_cancel(ctx.get(), query->async_id) == 0) {
                std::unique_ptr<Query> owned(query);  // libunbound will not call back now
                it = in_flight.erase(it);
            } else {
                query->abandoned = true;  // on_result or the destructor frees it
                ++it;
            }
        }
    }

    void process()
    {
        if (ub_poll(ctx.get()))
            (void)ub_process(ctx.get());  // a broken pipe shows up as timeouts below
        expire(Clock::now());
        // One at a time: a handler may start lookups or even run a blocking call.
        while (!ready.empty()) {
            Ready item = std::move(ready.front());
            ready.pop_front();
            item.handler(std::move(item.outcome));
        }
    }

    Clock::time_point next_deadline() const
    {
        if (!ready.empty())
            return Clock::now();
        auto next = Clock::time_point::max();
        for (const auto& entry : in_flight)
            if (!entry.second->abandoned)
                next = std::min(next, entry.second->deadline);
        return next;
    }

    // Counts a user-level lookup until its callback runs.
    template <typename Result>
    std::function<void(Result)> track(std::function<void(Result)> done)
    {
        ++lookups;
        return [this, done = std::move(done)](Result result) {
            --lookups;
            done(std::move(result));
        };
    }
};

namespace {
void check(int rc, const std::string& key, const std::string& what)
{
    if (rc != 0)
        throw ConfigError("", 0, key, what + ": " + ub_strerror(rc));
}
} // namespace

Resolver::Resolver(const ResolverOptions& options) : impl_(std::make_unique<Impl>())
{
    if (options.timeout <= std::chrono::milliseconds::zero())
        throw ConfigError("", 0, "dns.timeout", "must be positive");
    impl_->timeout = options.timeout;
    impl_->ctx.reset(ub_ctx_create());
    if (!impl_->ctx)
        throw ConfigError("cannot create a libunbound context");
    ub_ctx* ctx = impl_->ctx.get();
    // A thread, not a forked process: the pipe it answers on is ub_fd().
    check(ub_ctx_async(ctx, 1), "dns", "cannot enable asynchronous resolution");
    if (!options.forwarder.empty())
        check(ub_ctx_set_fwd(ctx, options.forwarder.c_str()), "dns.resolver",
              "unusable forwarder \"" + options.forwarder + "\" (expected addr or addr@port)");
    else
        check(ub_ctx_resolvconf(ctx, nullptr), "dns.resolver", "cannot use /etc/resolv.conf");
    // libunbound 1.17's ub_ctx_set_option keeps the whole "<zone> nodefault" text as
    // the zone name, so that form leaves the built-in zone in place. A transparent
    // local zone of the same name replaces the built-in one and, having no data of its
    // own, passes every query on: the effect of nodefault.
    std::set<std::string> passed;   // libunbound warns on stderr about a zone given twice
    const auto pass_on = [ctx, &passed](const std::string& zone, const std::string& key) {
        if (!passed.insert(zone).second)
            return;
        check(ub_ctx_set_option(ctx, "local-zone:", (zone + " transparent").c_str()), key,
              "libunbound refused zone \"" + zone + "\"");
    };
    if (!options.forwarder.empty()) {
        // The resolver the operator named answers everything, internal reverse zones
        // included: libunbound would otherwise answer the RFC 6303 / AS112 zones (the
        // RFC 1918 reverse zones among them) and the special-use names itself with
        // NXDOMAIN, and every peer on such an address would have "no PTR record".
        // unblock-lan-zones lifts the AS112 list (whatever this libunbound holds);
        // insecure-lan-zones keeps a trust anchor from failing their unsigned answers;
        // the rest of the built-in zones are passed on one by one.
        check(ub_ctx_set_option(ctx, "unblock-lan-zones:", "yes"), "dns.resolver", "cannot unblock the LAN zones");
        check(ub_ctx_set_option(ctx, "insecure-lan-zones:", "yes"), "dns.resolver", "cannot unblock the LAN zones");
        static constexpr const char* built_in[] = {
            "localhost.", "127.in-addr.arpa.",
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
            "onion.", "test.", "invalid.", "home.arpa.", "resolver.arpa.", "service.arpa.",
        };
        for (const char* zone : built_in)
            pass_on(zone, "dns.resolver");
    }
    for (const auto& zone : options.nodefault_zones) {
        const auto name = normalize_host_name(zone);
        if (!name)
            throw ConfigError("", 0, "dns.nodefault-zone", "not a zone name: \"" + zone + "\"");
        pass_on(absolute(*name), "dns.nodefault-zone");
    }
    if (!options.trust_anchor_file.empty()) {
        const auto& file = options.trust_anchor_file;
        if (!std::ifstream(file))
            throw ConfigError(file, 0, "dns.trust-anchor", "cannot read the trust anchor file");
        check(ub_ctx_add_ta_file(ctx, file.c_str()), "dns.trust-anchor",
              "libunbound refused trust anchor file " + file);
    }
    // libunbound reads its settings (the trust anchor file among them) only when the
    // context is finalised, normally at the first lookup, where an error would turn
    // every lookup into a temporary failure. Removing a zone that cannot exist
    // finalises it now, so a bad setting stops the program at start-up instead.
    const int rc = ub_ctx_zone_remove(ctx, "amtp-finalise-check.invalid.");
    if (rc != 0) {
        const std::string what = std::string("libunbound cannot start with these settings: ") + ub_strerror(rc);
        if (!options.trust_anchor_file.empty())
            throw ConfigError(options.trust_anchor_file, 0, "dns.trust-anchor", what);
        throw ConfigError("", 0, "dns", what);
    }
}

Resolver::~Resolver() = default;

void Resolver::async_ptr(const IpAddress& address, Callback done)
{
    auto finish = impl_->track(std::move(done));
    impl_->start(dns_wire::type_ptr, ptr_query_name(address), Clock::now() + impl_->timeout,
                 [finish](Outcome outcome) { finish(to_dns_result(std::move(outcome), RecordKind::ptr)); });
}

void Resolver::async_addresses(std::string name, Callback done)
{
    auto finish = impl_->track(std::move(done));
    const auto normalized = normalize_host_name(name);
    if (!normalized) {
        impl_->finish_later([finish](Outcome outcome) { finish(to_dns_result(std::move(outcome), RecordKind::a)); },
                            negative_outcome("not a host name"));
        return;
    }
    // Both queries share one deadline; the second to finish reports the pair.
    struct Pair {
        DnsResult a, aaaa;
        int remaining = 2;
        Callback finish;
    };
    auto pair = std::make_shared<Pair>();
    pair->finish = std::move(finish);
    const auto deadline = Clock::now() + impl_->timeout;
    const auto part = [pair](RecordKind kind) {
        return [pair, kind](Outcome outcome) {
            (kind == RecordKind::a ? pair->a : pair->aaaa) = to_dns_result(std::move(outcome), kind);
            if (--pair->remaining == 0)
                pair->finish(dns_wire::combine_addresses(std::move(pair->a), std::move(pair->aaaa)));
        };
    };
    impl_->start(dns_wire::type_a, *normalized, deadline, part(RecordKind::a));
    impl_->start(dns_wire::type_aaaa, *normalized, deadline, part(RecordKind::aaaa));
}

void Resolver::async_srv(std::string domain, SrvCallback done)
{
    auto finish = impl_->track(std::move(done));
    Impl* impl = impl_.get();
    auto handler = [finish, impl](Outcome outcome) { finish(to_srv_result(std::move(outcome), impl->rng)); };
    const auto normalized = normalize_host_name(domain);
    if (!normalized) {
        impl_->finish_later(std::move(handler), negative_outcome("not a domain name"));
        return;
    }
    impl_->start(dns_wire::type_srv, "_amtp._tcp." + *normalized, Clock::now() + impl_->timeout,
                 std::move(handler));
}

int Resolver::fd() const { return ub_fd(impl_->ctx.get()); }

void Resolver::process() { impl_->process(); }

std::size_t Resolver::pending() const { return impl_->lookups; }

std::chrono::steady_clock::time_point Resolver::next_deadline() const { return impl_->next_deadline(); }

void Resolver::run_until(const std::function<bool()>& finished)
{
    while (!finished() && pending() > 0) {
        const auto next = next_deadline();
        int wait_ms = -1;
        if (next != Clock::time_point::max()) {
            const auto left = next - Clock::now();
            // Rounded up, so the loop does not spin just short of a deadline.
            wait_ms = left <= Clock::duration::zero()
                          ? 0
                          : static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
        }
        // Readable, timed out or interrupted: process() sorts out which.
        pollfd pfd{fd(), POLLIN, 0};
        (void)::poll(&pfd, 1, wait_ms);
        process();
    }
}

DnsResult Resolver::ptr(const IpAddress& address)
{
    std::optional<DnsResult> result;
    async_ptr(address, [&result](DnsResult r) { result = std::move(r); });
    run_until([&result] { return result.has_value(); });
    return result ? std::move(*result) : DnsResult{DnsStatus::temporary, {}, false, "lookup lost", false};
}

DnsResult Resolver::addresses(const std::string& name)
{
    std::optional<DnsResult> result;
    async_addresses(name, [&result](DnsResult r) { result = std::move(r); });
    run_until([&result] { return result.has_value(); });
    return result ? std::move(*result) : DnsResult{DnsStatus::temporary, {}, false, "lookup lost", false};
}

SrvResult Resolver::srv(const std::string& domain)
{
    std::optional<SrvResult> result;
    async_srv(domain, [&result](SrvResult r) { result = std::move(r); });
    run_until([&result] { return result.has_value(); });
    return result ? std::move(*result) : SrvResult{DnsStatus::temporary, {}, "lookup lost"};
}

ResolverOptions resolver_options(const Settings& settings)
{
    ResolverOptions o;
    o.forwarder = settings.dns.resolver;
    o.trust_anchor_file = settings.dns.trust_anchor;
    o.nodefault_zones = settings.dns.nodefault_zones;
    o.timeout = settings.dns.timeout;
    return o;
}

} // namespace amtp
