// The Haraka adapter's session (plugins/haraka-native/src/session.cc): the core's
// rulebook fed what Haraka's hooks hand the addon, as strings of any content (the EHLO,
// MAIL and RCPT arguments, certificate names, PTR answers, Haraka's header list,
// message ids, reason names). addon.cc only converts JavaScript values to these
// arguments and the verdicts back; that part cannot run without Node, so the fuzzing
// starts below it.
//
// Input: one control byte, then calls on one connection.
//   control: bit 0 the connection reached a private endpoint's port (bit 5: the
//   wildcard one 0.0.0.0:2628, else 127.0.0.3:2627); bit 1 the host can relay; bit 2
//   listen.header-carrier; bit 3 listen.starttls; bit 4 IPv6 (peer and local address:
//   then the listener is the public one, both private endpoints being IPv4).
//   Each call: a byte choosing it (its low 4 bits % 13; bit 4 is a flag for some),
//   then its string arguments, each ended by a NUL (the last may end at the input's
//   end):
//   0 tls {names, comma-separated} (flag: the chain was refused); 1 helo; 2 ehlo
//   {argument}; 3 ehlo_ptr {status name}{names, comma-separated}; 4 mail {argument};
//   5 rcpt {argument}; 6 data; 7 reset; 8 message {size, decimal}{header entries,
//   separated by \x01} (flag: a line too long); 9 accepted {id}{detail}; 10
//   store_failed {reason name}{detail}; 11 refusal {event}{reason name}{detail};
//   12 trace_fields.
//
// Invariants: a refusal has a reason, a 4xx or 5xx reply whose enhanced code has the
// same class, no control character in its text, and one log line without CR or LF; a
// pass is 2xx or 3xx (or no reply, for the end of the data and a PTR nobody waited
// for); only a public listener's EHLO asks for the PTR, and without a reply; an
// authenticated session has a certificate naming its EHLO name (and on a public
// listener a PTR naming it); MAIL, RCPT and DATA pass only when authenticated; MAIL
// opens a transaction with a normalised sender, RCPT adds exactly its recipient,
// local or (only on a private listener of a host that can relay) not, up to the
// limit, and a refused RCPT adds nothing; the end of the data, when it passes, leaves
// a defined MPC value and names header entries to remove that exist, in ascending
// order, and only when a carrier or an Authentication-Results field is among them;
// a refused end of data, an acceptance and a storage failure end the transaction;
// trace fields are CRLF lines without control characters but folding tabs; every
// reason and DNS status name maps back to itself.
#include "fuzz_common.hpp"

#include "session.hpp"

#include "amtp/mpc.hpp"
#include "amtp/names.hpp"
#include "amtp/policy.hpp"
#include "amtp/resolver.hpp"
#include "amtp/smtp_syntax.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

using namespace amtp;
using namespace amtp::haraka;

namespace {

const char* const policy_xml = R"(<amtp-policy>
  <advertise> <deny mpc="*/optout"/> </advertise>
  <domain name="b.test"> <deny mpc="com/*"/> <allow mpc="com/confirmed"/> </domain>
  <recipient address="carol@b.test"> <allow mpc="com/*"/> </recipient>
  <recipient address="far@d.test"> <deny mpc="*/*"/> </recipient>
  <sender address="news@b.test" mpc="com/optin"/>
</amtp-policy>
)";

std::shared_ptr<const Site> make_site(bool carrier, bool starttls)
{
    auto site = std::make_shared<Site>();
    Settings& s = site->settings;
    s.hostname = "mx.b.test";
    s.listen.public_endpoints = {*Endpoint::parse("127.0.0.3:2626")};
    s.listen.private_endpoints = {*Endpoint::parse("127.0.0.3:2627"), *Endpoint::parse("0.0.0.0:2628")};
    s.listen.header_carrier = carrier;
    s.listen.starttls = starttls;
    s.delivery.local_domains = {"b.test"};
    s.delivery.recipients = "any";   // no file system in a fuzz target
    s.limits.max_message_size = 2000;
    s.limits.max_recipients = 3;
    site->policy = std::make_shared<const Policy>(Policy::load_string(policy_xml, "fuzz.xml"));
    site->public_config = std::make_shared<const ServerConfig>(
        make_server_config(s, site->policy, ListenerKind::public_network));
    site->private_config = std::make_shared<const ServerConfig>(
        make_server_config(s, site->policy, ListenerKind::private_network));
    return site;
}

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

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

void check_verdict(const Verdict& v)
{
    FUZZ_CHECK(v.log.find_first_of("\r\n") == std::string::npos);
    FUZZ_CHECK(!fuzz::has_control(v.reply.text));
    for (const auto& line : v.reply.more)
        FUZZ_CHECK(!line.empty() && !fuzz::has_control(line));
    if (v.refused()) {
        FUZZ_CHECK(!v.needs_ptr);
        FUZZ_CHECK(v.reply.code >= 400 && v.reply.code <= 599);
        FUZZ_CHECK(v.reply.enhanced.empty() || v.reply.enhanced[0] == static_cast<char>('0' + v.reply.code / 100));
        FUZZ_CHECK(!v.log.empty());
        return;
    }
    FUZZ_CHECK(v.reply.code == 0 || (v.reply.code >= 200 && v.reply.code <= 399));
    if (v.needs_ptr)
        FUZZ_CHECK(v.reply.code == 0 && v.log.empty());
}

// What must hold of the session's facts after every call.
void check_facts(const Session& s, bool can_relay)
{
    const SessionFacts& f = s.facts();
    const Envelope& e = f.envelope;
    FUZZ_CHECK(e.recipients.size() == e.local.size());
    FUZZ_CHECK(e.recipients.size() <= 3);
    for (std::size_t i = 0; i < e.recipients.size(); ++i) {
        const auto box = parse_mailbox(e.recipients[i]);
        FUZZ_CHECK(box && box->str() == e.recipients[i]);
        FUZZ_CHECK(e.local[i] == (box->domain == "b.test"));
        if (!e.local[i])
            FUZZ_CHECK(can_relay && f.listener == ListenerKind::private_network);
    }
    if (f.authenticated && !f.ehlo_name.empty()) {
        FUZZ_CHECK(f.identity && client_name_matches(f.identity->names, f.ehlo_name));
        if (f.listener == ListenerKind::public_network)
            FUZZ_CHECK(f.ptr_name == f.ehlo_name);
    }
    if (!e.sender.empty()) {
        const auto box = parse_mailbox(e.sender);
        FUZZ_CHECK(box && box->str() == e.sender);
    }
}

void check_fields(const std::string& fields)
{
    FUZZ_CHECK(fuzz::crlf_lines(fields));
    std::size_t start = 0;
    while (start < fields.size()) {
        const auto end = fields.find("\r\n", start);
        const std::string_view line(fields.data() + start, end - start);
        FUZZ_CHECK(!line.empty());
        for (const char ch : line) {
            const auto c = static_cast<unsigned char>(ch);
            FUZZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        start = end + 2;
    }
}

void check_names()
{
    for (int i = 0; i < static_cast<int>(Reason::count_); ++i) {
        const auto r = static_cast<Reason>(i);
        FUZZ_CHECK(reason_from_name(reason_name(r)) == r);
    }
    for (const auto st : {DnsStatus::answer, DnsStatus::negative, DnsStatus::temporary})
        FUZZ_CHECK(dns_status_by_name(dns_status_name(st)) == st);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    static const std::array<std::shared_ptr<const Site>, 4> sites = {
        make_site(false, false), make_site(true, false), make_site(false, true), make_site(true, true)};
    static const bool names_checked = (check_names(), true);
    (void)names_checked;

    fuzz::Input in(data, size);
    const std::uint8_t control = in.byte();
    const bool to_private = control & 1;
    const bool can_relay = control & 2;
    const bool v6 = control & 16;
    const auto& site = sites[((control >> 2) & 1) | (((control >> 3) & 1) << 1)];
    const IpAddress peer = *IpAddress::parse(v6 ? "2001:db8::2" : "127.0.0.2");
    const unsigned port = to_private ? (control & 32 ? 2628 : 2627) : 2626;
    const IpAddress local = *IpAddress::parse(v6 ? "2001:db8::3" : port == 2628 ? "127.0.0.9" : "127.0.0.3");
    Session s(site, peer, local, port, "FUZZ-1", can_relay);
    // Both private endpoints are IPv4 (one of them 0.0.0.0): an IPv6 connection is public.
    const bool expect_private = to_private && !v6;
    FUZZ_CHECK((s.facts().listener == ListenerKind::private_network) == expect_private);
    FUZZ_CHECK(s.lookup_at_connect() == !expect_private);
    FUZZ_CHECK(site->listener(local, port) == s.facts().listener);

    auto args = [&](std::size_t n) {
        std::vector<std::string> a;
        for (std::size_t i = 0; i < n; ++i) {
            std::string arg;
            while (!in.empty()) {
                const std::uint8_t b = in.byte();
                if (b == 0)
                    break;
                arg += static_cast<char>(b);
            }
            a.push_back(std::move(arg));
        }
        return a;
    };

    while (!in.empty()) {
        const std::uint8_t op = in.byte();
        const bool flag = op & 16;
        const SessionFacts before = s.facts();
        switch ((op & 15) % 13) {
        case 0: {
            const auto a = args(1);
            IdentityResult id;
            if (flag) {
                id.reason = Reason::untrusted_issuer;
                id.detail = "unable to get local issuer certificate";
            } else {
                Identity identity;
                identity.names = split(a[0], ',');
                identity.subject = "CN=" + a[0];
                identity.sha256 = std::string(64, 'a');
                id.identity = identity;
            }
            const std::string log = s.tls(id, "TLSv1.3", "TLS_AES_256_GCM_SHA384");
            FUZZ_CHECK(!log.empty() && log.find_first_of("\r\n") == std::string::npos);
            FUZZ_CHECK(!s.facts().authenticated && !s.facts().in_mail && s.facts().envelope.recipients.empty());
            break;
        }
        case 1: {
            const Verdict v = s.helo();
            check_verdict(v);
            FUZZ_CHECK(v.refused() && !s.facts().authenticated);
            break;
        }
        case 2: {
            const Verdict v = s.ehlo(args(1)[0]);
            check_verdict(v);
            if (v.needs_ptr)
                FUZZ_CHECK(s.facts().listener == ListenerKind::public_network && !s.facts().authenticated);
            if (!v.refused() && !v.needs_ptr && s.facts().authenticated) {
                const auto& more = v.reply.more;
                FUZZ_CHECK(v.reply.code == 250 && std::find(more.begin(), more.end(), "PIPELINING") != more.end());
            }
            break;
        }
        case 3: {
            const auto a = args(2);
            ReverseDnsResult r;
            r.status = dns_status_by_name(a[0]).value_or(DnsStatus::answer);
            r.names = split(a[1], ',');
            const Verdict v = s.ehlo_ptr(r);
            check_verdict(v);
            FUZZ_CHECK(!v.needs_ptr);
            if (r.status != DnsStatus::answer)
                FUZZ_CHECK(!s.facts().authenticated || before.authenticated);
            break;
        }
        case 4: {
            const Verdict v = s.mail(args(1)[0]);
            check_verdict(v);
            FUZZ_CHECK(s.facts().envelope.recipients.empty());
            FUZZ_CHECK(s.facts().in_mail == !v.refused());
            if (!v.refused()) {
                FUZZ_CHECK(s.facts().authenticated && v.reply.code == 250);
                if (s.facts().mpc_from_parameter)
                    FUZZ_CHECK(parse_mpc(s.facts().envelope.mpc.str()).value == s.facts().envelope.mpc);
            }
            break;
        }
        case 5: {
            const Verdict v = s.rcpt(args(1)[0]);
            check_verdict(v);
            const std::size_t n = s.facts().envelope.recipients.size();
            if (v.refused()) {
                FUZZ_CHECK(n == before.envelope.recipients.size());
            } else {
                FUZZ_CHECK(s.facts().authenticated && v.reply.code == 250);
                FUZZ_CHECK(n == before.envelope.recipients.size() + 1);
            }
            break;
        }
        case 6: {
            const Verdict v = s.data();
            check_verdict(v);
            if (!v.refused())
                FUZZ_CHECK(s.facts().authenticated && !s.facts().envelope.recipients.empty() && v.reply.code == 354);
            break;
        }
        case 7:
            s.reset();
            FUZZ_CHECK(!s.facts().in_mail && s.facts().envelope.recipients.empty());
            break;
        case 8: {
            const auto a = args(2);
            MessageInput m;
            m.size = a[0].size() > 6 ? 1000000 : static_cast<std::uint64_t>(std::atoi(a[0].c_str()));
            m.line_too_long = flag;
            m.header = split(a[1], '\x01');
            const MessageVerdict mv = s.message(m);
            check_verdict(mv.verdict);
            if (mv.verdict.refused()) {
                FUZZ_CHECK(mv.remove.empty() && !s.facts().in_mail);
                break;
            }
            FUZZ_CHECK(mv.verdict.reply.code == 0 && s.facts().authenticated);
            FUZZ_CHECK(m.size <= 2000 && !m.line_too_long);
            FUZZ_CHECK(parse_mpc(s.facts().envelope.mpc.str()).value == s.facts().envelope.mpc);
            FUZZ_CHECK(std::is_sorted(mv.remove.begin(), mv.remove.end()));
            FUZZ_CHECK(std::adjacent_find(mv.remove.begin(), mv.remove.end()) == mv.remove.end());
            for (const auto i : mv.remove) {
                FUZZ_CHECK(i < m.header.size());
                // An entry goes for its own field, or as the continuation of an earlier
                // one (Haraka never makes such an entry; the input here may).
                const std::string entry = lower(m.header[i]);
                FUZZ_CHECK(entry.find("amtp-mpc") != std::string::npos ||
                           entry.find("authentication-results") != std::string::npos || entry[0] == ' ' ||
                           entry[0] == '\t');
            }
            check_fields(s.trace_fields(1800000000));
            break;
        }
        case 9: {
            const auto a = args(2);
            const Verdict v = s.accepted(a[0], a[1]);
            check_verdict(v);
            FUZZ_CHECK(v.reply.code == 250 && !v.log.empty() && !s.facts().in_mail);
            break;
        }
        case 10: {
            const auto a = args(2);
            const Reason r = reason_from_name(a[0]).value_or(Reason::storage_temporary);
            const Verdict v = s.store_failed(r == Reason::none ? Reason::storage_temporary : r, a[1]);
            check_verdict(v);
            FUZZ_CHECK(v.refused() && !s.facts().in_mail);
            break;
        }
        case 11: {
            const auto a = args(3);
            const Reason r = reason_from_name(a[1]).value_or(Reason::input_overflow);
            const Verdict v = s.refusal(a[0], r == Reason::none ? Reason::input_overflow : r, a[2], flag);
            check_verdict(v);
            FUZZ_CHECK(v.counts_as_error == flag);
            break;
        }
        default:
            if (s.facts().authenticated)
                check_fields(s.trace_fields(1800000000));
            break;
        }
        check_facts(s, can_relay);
    }
    return 0;
}
