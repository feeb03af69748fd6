#include "amtp/reverse_dns.hpp"

#include "amtp/names.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

namespace amtp {

std::string ptr_query_name(const IpAddress& address)
{
    const std::uint8_t* bytes = address.bytes();
    std::string name;
    if (address.is_v4()) {
        for (std::size_t i = 4; i-- > 0;)
            name += std::to_string(bytes[i]) + ".";
        return name + "in-addr.arpa";
    }
    // RFC 3596: one label per nibble, least significant first.
    static constexpr char hex[] = "0123456789abcdef";
    for (std::size_t i = 16; i-- > 0;) {
        name += hex[bytes[i] & 0x0f];
        name += '.';
        name += hex[bytes[i] >> 4];
        name += '.';
    }
    return name + "ip6.arpa";
}

namespace {

bool contains(const std::vector<std::string>& names, std::string_view name)
{
    return std::find(names.begin(), names.end(), name) != names.end();
}

// A hostile reverse zone could list hundreds of names, each costing two forward
// lookups; a genuine host has one or a few. Names past this many are not looked up
// and count as unconfirmed.
constexpr std::size_t max_forward_checks = 10;

enum class Confirmation { confirmed, unconfirmed, unchecked };

Confirmation confirm(const DnsResult& forward, const IpAddress& address)
{
    if (forward.status == DnsStatus::temporary)
        return Confirmation::unchecked;
    if (forward.status == DnsStatus::answer) {
        for (const auto& text : forward.records) {
            const auto record = IpAddress::parse(text);
            if (record && *record == address)
                return Confirmation::confirmed;
        }
        // The family that failed temporarily might still hold the address.
        if (forward.partial)
            return Confirmation::unchecked;
    }
    return Confirmation::unconfirmed;
}

// Collects the forward lookups of every PTR name; the last one to finish reports.
struct ForwardCheck {
    std::vector<std::string> names;
    std::vector<Confirmation> verdicts;
    std::vector<std::string> errors;
    std::size_t remaining = 0;
    std::function<void(ReverseDnsResult)> done;

    void finish()
    {
        ReverseDnsResult out;
        out.forward_checked = true;
        for (std::size_t i = 0; i < names.size(); ++i) {
            switch (verdicts[i]) {
            case Confirmation::confirmed:
                out.names.push_back(names[i]);
                break;
            case Confirmation::unconfirmed:
                out.unconfirmed.push_back(names[i]);
                break;
            case Confirmation::unchecked:
                out.unchecked.push_back(names[i]);
                break;
            }
        }
        // A temporary failure only matters when nothing was confirmed: one confirmed
        // name is a usable answer whatever happened to the others.
        out.status = out.names.empty() && !out.unchecked.empty() ? DnsStatus::temporary : DnsStatus::answer;
        for (const auto& e : errors)
            out.error += (out.error.empty() ? "" : "; ") + e;
        done(std::move(out));
    }
};

} // namespace

Reason check_ptr(const ReverseDnsResult& result, std::string_view ehlo_name)
{
    if (result.status == DnsStatus::temporary)
        return Reason::dns_temporary;
    if (result.status == DnsStatus::negative ||
        (result.names.empty() && result.unconfirmed.empty() && result.unchecked.empty()))
        return Reason::ptr_missing;
    const auto normalized = normalize_host_name(ehlo_name);
    const std::string ehlo = normalized ? *normalized : std::string(ehlo_name);
    if (contains(result.names, ehlo))
        return Reason::none;
    if (contains(result.unchecked, ehlo))
        return Reason::dns_temporary;  // a retry may confirm it: never a 5xx for that
    if (result.names.empty() && !result.unconfirmed.empty())
        return Reason::ptr_unconfirmed;
    return Reason::ptr_mismatch;
}

void lookup_client_names(Resolver& resolver, const IpAddress& address, bool forward_confirm,
                         std::function<void(ReverseDnsResult)> done)
{
    // The callbacks run from resolver.process(), so the resolver outlives them.
    resolver.async_ptr(address, [&resolver, address, forward_confirm,
                                 done = std::move(done)](DnsResult ptr) mutable {
        if (ptr.status != DnsStatus::answer || !forward_confirm) {
            ReverseDnsResult out;
            out.status = ptr.status;
            out.error = std::move(ptr.error);
            out.names = std::move(ptr.records);
            done(std::move(out));
            return;
        }
        auto check = std::make_shared<ForwardCheck>();
        check->names = std::move(ptr.records);
        check->verdicts.assign(check->names.size(), Confirmation::unconfirmed);
        check->done = std::move(done);
        const std::size_t checked = std::min(check->names.size(), max_forward_checks);
        if (checked < check->names.size())
            check->errors.push_back("only the first " + std::to_string(max_forward_checks) +
                                    " PTR names were forward-checked");
        check->remaining = checked;
        if (checked == 0) {  // the resolver never answers with no records; be safe anyway
            check->finish();
            return;
        }
        for (std::size_t i = 0; i < checked; ++i) {
            resolver.async_addresses(check->names[i], [check, i, address](DnsResult forward) {
                check->verdicts[i] = confirm(forward, address);
                if (forward.status == DnsStatus::temporary || forward.partial)
                    check->errors.push_back(check->names[i] + ": " + forward.error);
                if (--check->remaining == 0)
                    check->finish();
            });
        }
    });
}

ReverseDnsResult lookup_client_names_blocking(Resolver& resolver, const IpAddress& address, bool forward_confirm)
{
    std::optional<ReverseDnsResult> result;
    lookup_client_names(resolver, address, forward_confirm, [&result](ReverseDnsResult r) { result = std::move(r); });
    resolver.run_until([&result] { return result.has_value(); });
    if (result)
        return std::move(*result);
    ReverseDnsResult lost;
    lost.error = "lookup lost";
    return lost;
}

} // namespace amtp
