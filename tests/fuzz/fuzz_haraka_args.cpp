// The Haraka adapter's decisions on the strings Haraka hands the addon
// (plugins/haraka-native/src/checks.cc): the MAIL argument, EHLO names against
// certificate names, PTR answers, header lines, trace field inputs (EHLO name, peer
// address, recipient, certificate text, MPC value), reason, status and trust names,
// local domains. addon.cc only converts JavaScript values to these arguments and
// back; that part cannot run without Node, so the fuzzing starts below it.
//
// Input: one byte choosing the function and a flag bit, then its string arguments,
// each ended by a NUL (the last may end at the input's end).
//   % 7: 0 check_mail_command {argument} (bit 3: MPC= required); 1 check_ehlo
//   {names, comma-separated}{EHLO}; 2 check_ptr_answer {status}{names}{EHLO};
//   3 scan_header {lines, LF-separated}; 4 trace_fields {ehlo}{peer}{ptr}{mpc}
//   {session}{recipient}{version}{cipher}{names}{subject}{issuer}{serial} (bit 3:
//   with an identity); 5 reason_by_name, dns_status_by_name, trust_by_name {name};
//   6 is_local_domain {domains, comma-separated}{domain}.
//
// Invariants: an accepted MAIL has a normalised sender (or the null path), only SIZE,
// BODY and MPC parameters, the MPC value when one is required, and a value that
// parses back to itself; a refusal has a reason, and unknown_parameter names the
// keyword; an EHLO name that is not refused for syntax matches a certificate naming
// exactly it; a PTR check gives one of its reasons, never a pass on a failed lookup;
// the scanner keeps one answer per line and every carrier value comes from a removed
// field, trimmed; trace
// fields are CRLF lines with no control character but folding tabs, continuations
// indented, and appear only with a valid peer address and MPC value; every name
// lookup gives back the name it was given.
#include "fuzz_common.hpp"

#include "checks.hpp"

#include "amtp/names.hpp"
#include "amtp/smtp_syntax.hpp"

#include <algorithm>
#include <string>
#include <vector>

using namespace amtp;
using namespace amtp::haraka;

namespace {

std::vector<std::string> split(const std::string& s, char sep)
{
    std::vector<std::string> out;
    if (s.empty())
        return out;
    std::size_t start = 0;
    for (;;) {
        const auto pos = s.find(sep, start);
        out.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
        if (pos == std::string::npos)
            return out;
        start = pos + 1;
    }
}

void check_mail(const std::string& argument, bool required)
{
    const MailCheck m = check_mail_command(argument, required);
    if (m.reason != Reason::none) {
        FUZZ_CHECK(m.sender.empty() && !m.mpc && m.parameters.empty());
        FUZZ_CHECK((m.reason == Reason::unknown_parameter) == !m.detail.empty());
        return;
    }
    FUZZ_CHECK(m.detail.empty());
    if (!m.sender.empty()) {
        const auto box = parse_mailbox(m.sender);
        FUZZ_CHECK(box && box->str() == m.sender);
        FUZZ_CHECK(normalize_host_name(box->domain) == box->domain);
    }
    for (const auto& [keyword, value] : m.parameters) {
        FUZZ_CHECK(keyword == "SIZE" || keyword == "BODY" || keyword == "MPC");
        if (keyword == "SIZE")
            FUZZ_CHECK(!value.empty() && value.size() <= 19 && value.find_first_not_of("0123456789") == std::string::npos);
        if (keyword == "BODY")
            FUZZ_CHECK(value == "7BIT" || value == "8BITMIME");
    }
    if (required)
        FUZZ_CHECK(m.mpc.has_value());
    if (m.mpc) {
        const auto again = parse_mpc(m.mpc->str());
        FUZZ_CHECK(again.value && again.value->str() == m.mpc->str());
    }
}

void check_ehlo_names(const std::string& names, const std::string& ehlo)
{
    const auto list = split(names, ',');
    const Reason r = check_ehlo(list, ehlo);
    FUZZ_CHECK(r == Reason::none || r == Reason::ehlo_syntax || r == Reason::ehlo_not_in_cert);
    if (r == Reason::ehlo_syntax)
        return;
    const auto name = normalize_host_name(ehlo);
    FUZZ_CHECK(name && is_fully_qualified(*name));
    FUZZ_CHECK(check_ehlo({*name}, ehlo) == Reason::none);
    FUZZ_CHECK(check_ehlo({}, ehlo) == Reason::ehlo_not_in_cert);
}

void check_ptr(const std::string& status, const std::string& names, const std::string& ehlo)
{
    ReverseDnsResult result;
    result.status = dns_status_by_name(status).value_or(DnsStatus::answer);
    result.names = split(names, ',');
    const Reason r = check_ptr_answer(result, ehlo);
    FUZZ_CHECK(r == Reason::none || r == Reason::ehlo_syntax || r == Reason::ptr_missing || r == Reason::ptr_mismatch ||
               r == Reason::ptr_unconfirmed || r == Reason::dns_temporary);
    if (r == Reason::none)
        FUZZ_CHECK(result.status == DnsStatus::answer && !result.names.empty());
    if (result.status == DnsStatus::temporary)
        FUZZ_CHECK(r == Reason::dns_temporary || r == Reason::ehlo_syntax);
}

void check_scan(const std::string& text)
{
    const auto lines = split(text, '\n');
    const HeaderScan scan = scan_header(lines, "mx.b.test");
    FUZZ_CHECK(scan.keep.size() == lines.size());
    // Every forged Authentication-Results field is among the removed lines.
    FUZZ_CHECK(scan.forged_results <= static_cast<std::size_t>(std::count(scan.keep.begin(), scan.keep.end(), false)));
    // Each carrier value comes from a field that is removed (a lone CR inside a line
    // is the line's content: parse_mpc refuses it later, as amtpd's scanner does).
    FUZZ_CHECK(scan.carriers.size() <= static_cast<std::size_t>(std::count(scan.keep.begin(), scan.keep.end(), false)));
    for (const auto& value : scan.carriers) {
        FUZZ_CHECK(value.find('\n') == std::string::npos);
        FUZZ_CHECK(value.empty() || (value.find_first_of(" \t") != 0 && value.find_last_of(" \t") != value.size() - 1));
    }
}

// Received and Authentication-Results as traceFields returns them.
void check_fields(const std::string& fields)
{
    FUZZ_CHECK(fuzz::crlf_lines(fields));
    FUZZ_CHECK(fields.rfind("Received:", 0) == 0);
    std::size_t start = 0;
    while (start < fields.size()) {
        const auto end = fields.find("\r\n", start);
        const std::string_view line(fields.data() + start, end - start);
        FUZZ_CHECK(!line.empty());
        for (const char ch : line) {
            const auto c = static_cast<unsigned char>(ch);
            FUZZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        const bool field_start = line.rfind("Received:", 0) == 0 || line.rfind("Authentication-Results:", 0) == 0;
        FUZZ_CHECK(field_start || line.front() == ' ' || line.front() == '\t');
        start = end + 2;
    }
}

void check_trace(const std::vector<std::string>& a, bool with_identity)
{
    TraceRequest t;
    t.ehlo_name = a[0];
    t.peer_ip = a[1];
    t.ptr_name = a[2];
    t.mpc = a[3];
    t.session_id = a[4];
    t.recipient = a[5];
    t.tls_version = a[6];
    t.tls_cipher = a[7];
    t.when = 1800000000;
    if (with_identity) {
        Identity id;
        id.names = split(a[8], ',');
        id.subject = a[9];
        id.issuer = a[10];
        id.serial = a[11];
        id.sha256 = std::string(64, 'a');
        id.trust = trust_by_name(a[6]);
        t.identity = id;
    }
    const TraceResult r = trace_fields("mx.b.test", t);
    FUZZ_CHECK(r.peer_ok == IpAddress::parse(a[1]).has_value());
    const bool mpc_ok = a[3].empty() || parse_mpc(a[3]).value.has_value();
    if (!r.peer_ok || !mpc_ok) {
        FUZZ_CHECK(r.fields.empty());
        FUZZ_CHECK(!r.peer_ok || r.mpc_reason != Reason::none);
        return;
    }
    FUZZ_CHECK(r.mpc_reason == Reason::none);
    check_fields(r.fields);
}

void check_names(const std::string& name)
{
    if (const auto r = reason_by_name(name))
        FUZZ_CHECK(reason_name(*r) == name);
    if (const auto s = dns_status_by_name(name))
        FUZZ_CHECK(dns_status_name(*s) == name);
    const TrustKind t = trust_by_name(name);
    FUZZ_CHECK(t == TrustKind::public_ca || name == "pinned" || name == "private_ca");
}

void check_local(const std::string& domains, const std::string& domain)
{
    std::vector<std::string> list;
    for (const auto& d : split(domains, ','))
        if (const auto n = normalize_host_name(d))
            list.push_back(*n);
    if (is_local_domain(list, domain)) {
        const auto n = normalize_host_name(domain);
        FUZZ_CHECK(n && std::find(list.begin(), list.end(), *n) != list.end());
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fuzz::Input in(data, size);
    const std::uint8_t control = in.byte();
    std::vector<std::string> a;
    while (!in.empty()) {
        std::string arg;
        for (std::uint8_t b = in.byte(); b != 0; b = in.byte()) {
            arg += static_cast<char>(b);
            if (in.empty())
                break;
        }
        a.push_back(std::move(arg));
    }
    a.resize(std::max<std::size_t>(a.size(), 12));
    const bool flag = control & 8;
    switch (control % 7) {
    case 0: check_mail(a[0], flag); break;
    case 1: check_ehlo_names(a[0], a[1]); break;
    case 2: check_ptr(a[0], a[1], a[2]); break;
    case 3: check_scan(a[0]); break;
    case 4: check_trace(a, flag); break;
    case 5: check_names(a[0]); break;
    case 6: check_local(a[0], a[1]); break;
    }
    return 0;
}
