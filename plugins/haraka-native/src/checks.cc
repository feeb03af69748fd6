#include "checks.hpp"

#include "amtp/message_headers.hpp"
#include "amtp/names.hpp"
#include "amtp/smtp_syntax.hpp"
#include "amtp/trace_headers.hpp"

#include <algorithm>

namespace amtp::haraka {

std::optional<Reason> reason_by_name(std::string_view name)
{
    // Reasons are a dense enum from none up to count_; reason_name is the one table.
    for (int i = 0; i < static_cast<int>(Reason::count_); ++i) {
        const auto r = static_cast<Reason>(i);
        if (name == reason_name(r))
            return r;
    }
    return std::nullopt;
}

MailCheck check_mail_command(std::string_view argument, bool require_mpc)
{
    MailCheck m;
    auto fail = [](Reason r, std::string detail = {}) {
        MailCheck f;
        f.reason = r;
        f.detail = std::move(detail);
        return f;
    };
    const auto path = parse_path_command(argument, "FROM");
    if (!path)
        return fail(Reason::syntax_error);
    if (!path->address.empty()) {
        const auto box = parse_mailbox(path->address);
        if (!box)
            return fail(Reason::bad_sender);
        m.sender = box->str();
    }
    for (const auto& p : path->parameters) {
        if (p.keyword == "SIZE") {
            if (!p.has_value || p.value.empty() || p.value.find_first_not_of("0123456789") != std::string::npos ||
                p.value.size() > 19)
                return fail(Reason::syntax_error);
        } else if (p.keyword == "BODY") {
            if (p.value != "7BIT" && p.value != "8BITMIME")
                return fail(Reason::syntax_error);
        } else if (p.keyword != "MPC") {
            return fail(Reason::unknown_parameter, p.keyword);
        }
        m.parameters.emplace_back(p.keyword, p.value);
    }
    const MpcParameter mpc = mpc_parameter(path->parameters, require_mpc);
    if (mpc.reason != Reason::none)
        return fail(mpc.reason);
    m.mpc = mpc.value;
    return m;
}

Reason check_ehlo(const std::vector<std::string>& certificate_names, std::string_view ehlo_name)
{
    const auto ehlo = normalize_host_name(ehlo_name);
    if (!ehlo || !is_fully_qualified(*ehlo))
        return Reason::ehlo_syntax;
    if (!client_name_matches(certificate_names, *ehlo))
        return Reason::ehlo_not_in_cert;
    return Reason::none;
}

Reason check_ptr_answer(const ReverseDnsResult& result, std::string_view ehlo_name)
{
    const auto ehlo = normalize_host_name(ehlo_name);
    if (!ehlo)
        return Reason::ehlo_syntax;
    return check_ptr(result, *ehlo);
}

HeaderScan scan_header(const std::vector<std::string>& lines, const std::string& hostname)
{
    HeaderScanner scanner(authserv_id(hostname));
    HeaderScan scan;
    scan.keep.reserve(lines.size());
    // Held lines come back in order just before the current one: the last ones marked
    // dropped (the current line's own verdict is pushed after).
    const auto mark_released = [&] {
        std::size_t n = scanner.take_released().size();
        for (std::size_t i = scan.keep.size(); n > 0 && i-- > 0;)
            if (!scan.keep[i]) {
                scan.keep[i] = true;
                --n;
            }
    };
    for (const auto& line : lines) {
        const bool keep = scanner.line(line);
        mark_released();
        scan.keep.push_back(keep);
    }
    scanner.finish();
    mark_released();
    scan.mpc_field = scanner.has_mpc_field();
    scan.carriers = scanner.carrier_values();
    scan.forged_results = scanner.forged_results();
    return scan;
}

bool is_local_domain(const std::vector<std::string>& local_domains, std::string_view domain)
{
    const auto name = normalize_host_name(domain);
    return name && std::find(local_domains.begin(), local_domains.end(), *name) != local_domains.end();
}

std::optional<DnsStatus> dns_status_by_name(std::string_view name)
{
    if (name == "answer")
        return DnsStatus::answer;
    if (name == "negative")
        return DnsStatus::negative;
    if (name == "temporary")
        return DnsStatus::temporary;
    return std::nullopt;
}

TrustKind trust_by_name(std::string_view name)
{
    return name == "pinned" ? TrustKind::pinned : name == "private_ca" ? TrustKind::private_ca : TrustKind::public_ca;
}

TraceResult trace_fields(const std::string& by_host, const TraceRequest& request)
{
    TraceResult result;
    TraceInfo t;
    t.by_host = by_host;
    t.ehlo_name = request.ehlo_name;
    const auto ip = IpAddress::parse(request.peer_ip);
    if (!ip)
        return result;
    result.peer_ok = true;
    t.peer_address = *ip;
    t.ptr_name = request.ptr_name;
    t.identity = request.identity;
    if (!request.mpc.empty()) {
        const auto parsed = parse_mpc(request.mpc);
        if (!parsed.value) {
            result.mpc_reason = parsed.reason;
            return result;
        }
        t.mpc = *parsed.value;
    }
    t.session_id = request.session_id;
    t.recipient = request.recipient;
    t.tls_version = request.tls_version;
    t.tls_cipher = request.tls_cipher;
    t.when = request.when;
    result.fields = received_field(t) + authentication_results_field(by_host, t, "pass", Reason::none);
    return result;
}

} // namespace amtp::haraka
