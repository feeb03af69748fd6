// The Exim adapter's argument handling: the ${dlfunc} entry points' argument readers
// and the decisions they call (plugins/exim/src/arguments.cpp, acl_stages.cpp,
// client.cpp), on argument vectors of any content. The entry points themselves
// (dlfunc.cpp) need Exim's local_scan.h and its functions (string_copy, log_write),
// which exist only inside the exim4 binary; they only turn argv into strings, call
// what is fuzzed here and copy the verdict out, so this is the layer below them.
//
// Input: calls, one after another, on one connection (as one Exim process serves
// one): a byte choosing the entry point, a byte giving argc (0-7), then the arguments,
// each ended by a NUL (Exim's arguments are C strings, so NUL is the one byte that
// cannot occur in them; the last may end at the input's end).
//   % 10: 0 amtp_cert {depth}{base64}; 1 amtp_ehlo {command}{peer}{local}{port}{tls}
//   {base64}{PTR answer: first byte n/t/else answer, then names, comma-separated};
//   2 amtp_mail {command}; 3 amtp_rcpt {command}; 4 amtp_data {headers}
//   {recipients}{sender}{version}{cipher}; 5 amtp_trace {field}; 6 amtp_local_part
//   {local part}; 7 amtp_route {domain}{SRV targets "name port,..."}{addresses};
//   then amtp_target {address}{port}; 8 amtp_outgoing_mpc {header}{sender};
//   9 amtp_server_cert {address}{port}{depth}{base64}.
// argv[0] (the configuration file) is left out: the site is built in below (a private
// listener 127.0.0.3:2687 trusting one pinned certificate from 10.0.0.0/8, the test
// PKI's dyn1.isp.test, so an EHLO can pass; local domain b.test; a policy).
//
// Invariants: a verdict is "<2xx|4xx|5xx> [x.y.z] text" on one line with no control
// character, and its log line has no CR or LF; MAIL passes only with TLS after a
// passed EHLO, RCPT only after one, and on the public listener only for a local
// domain; DATA passes only after a passed EHLO and then sets the MPC value and the
// three fields amtp_trace yields (LF lines, no CR, no control character but folding
// tabs, continuations indented), and a refusal leaves them empty; the recorded chain
// has at most 16 certificates; a routed local part is safe as one Maildir directory
// and one Exim list item; a route's host list is "ip::port" items with no blank; the
// outgoing MPC is empty or a defined value, never a rewritten one.
#include "fuzz_common.hpp"

#include "exim_module.hpp"

#include "amtp/errors.hpp"
#include "amtp/names.hpp"
#include "amtp/smtp_syntax.hpp"

#include <openssl/err.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

using namespace amtp;
using namespace amtp::exim;

namespace {

// tests/support/make-test-pki.sh: pinned.der (dyn1.isp.test, self-signed), as in
// fuzz_certificate.cpp.
const char* const pinned_sha256 = "a0541a1ea4470014ad652e9e8ea02733f9178a8a537dd55841da5ca2c6b27987";
const std::time_t now = 1800000000;

std::shared_ptr<const Site> make_site()
{
    auto site = std::make_shared<Site>();
    site->settings.hostname = "mx.b.test";
    site->settings.listen.private_endpoints = {*Endpoint::parse("127.0.0.3:2687")};
    site->settings.delivery.local_domains = {"b.test"};
    site->settings.delivery.recipients = "any";
    site->policy = std::make_shared<const Policy>(Policy::load_string(
        "<amtp-policy><advertise><deny mpc=\"*/optout\"/></advertise>"
        "<recipient address=\"nocom@b.test\"><deny mpc=\"com/*\"/></recipient>"
        "<sender address=\"alice@b.test\" mpc=\"per/individual\"/></amtp-policy>",
        "fuzz.xml"));
    TrustOptions trust;
    PrivateNetwork network;
    network.name = "isp";
    network.pins.push_back({pinned_sha256, {*IpNetwork::parse("10.0.0.0/8")}});
    trust.private_networks.push_back(network);
    site->trust = TrustStore::load(trust);
    for (const auto kind : {ListenerKind::public_network, ListenerKind::private_network}) {
        ServerConfig c = make_server_config(site->settings, site->policy, kind);
        c.accept_header_carrier = true;   // as Site::load(..., MpcCarrier::header_only)
        (kind == ListenerKind::public_network ? site->public_config : site->private_config) =
            std::make_shared<const ServerConfig>(std::move(c));
    }
    return site;
}

void check_decision(const Decision& d)
{
    const std::string text = acl_text(d.reply);
    fuzz::trace("> ", text);
    FUZZ_CHECK(text.size() >= 4 && (text[0] == '2' || text[0] == '4' || text[0] == '5') && text[3] == ' ');
    FUZZ_CHECK(d.reply.code >= 200 && d.reply.code <= 599);
    FUZZ_CHECK(!fuzz::has_control(text));
    FUZZ_CHECK(!fuzz::has_cr_or_lf(d.log));
}

// One header field as amtp_trace yields it to add_header: LF-ended lines, folded.
void check_field(const std::string& field)
{
    FUZZ_CHECK(!field.empty() && field.back() == '\n');
    std::size_t start = 0;
    while (start < field.size()) {
        const auto nl = field.find('\n', start);
        const std::string_view line(field.data() + start, nl - start);
        for (const char ch : line) {
            const auto c = static_cast<unsigned char>(ch);
            FUZZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        FUZZ_CHECK(!line.empty());
        if (start > 0)
            FUZZ_CHECK(line.front() == ' ' || line.front() == '\t');
        start = nl + 1;
    }
}

ReverseDnsResult ptr_answer(const std::string& spec)
{
    ReverseDnsResult r;
    r.status = spec.empty() || (spec[0] != 'n' && spec[0] != 't') ? DnsStatus::answer
               : spec[0] == 'n'                                  ? DnsStatus::negative
                                                                 : DnsStatus::temporary;
    if (r.status == DnsStatus::answer)
        for (const auto& name : split_recipients(spec.substr(spec.empty() ? 0 : 1)))
            r.names.push_back(name);
    else
        r.error = "fuzz";
    return r;
}

// "name port,name port" as SRV targets; the address list as A answers for every one.
Route route(const Arguments& args)
{
    const std::string& targets = args[2];
    const std::string& addresses = args[3];
    auto srv = [&](const std::string&) {
        SrvResult s;
        s.status = targets.empty() ? DnsStatus::negative : DnsStatus::answer;
        for (const auto& item : split_recipients(targets)) {
            const auto sp = item.find(' ');
            s.targets.push_back({0, 0, static_cast<std::uint16_t>(number_argument(item.substr(sp == std::string::npos ? item.size() : sp + 1))),
                                 item.substr(0, sp)});
        }
        return s;
    };
    auto lookup = [&](const std::string&) {
        DnsResult a;
        a.status = addresses == "t" ? DnsStatus::temporary : DnsStatus::answer;
        a.records = split_recipients(addresses);
        return a;
    };
    return route_domain(args[1], srv, lookup);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    static const std::shared_ptr<const Site> site = make_site();

    fuzz::Input in(data, size);
    Connection c;
    c.facts.session_id = "exim-fuzz";
    std::vector<Route::Hop> hops;
    std::vector<std::string> server_chain;
    bool ehlo_passed = false;
    while (!in.empty()) {
        const unsigned entry = in.byte() % 10;
        const unsigned argc = in.byte() % 8;
        Arguments args(1, "/etc/amtp/amtpd.ini");
        for (unsigned i = 0; i < argc && !in.empty(); ++i) {
            std::string a;
            for (std::uint8_t b = in.byte(); b != 0; b = in.byte()) {
                a += static_cast<char>(b);
                if (in.empty())
                    break;
            }
            args.push_back(std::move(a));
        }
        if (fuzz::verbose()) {
            std::fprintf(stderr, "< entry %u:", entry);
            for (const auto& a : args)
                std::fprintf(stderr, " {%s}", a.c_str());
            std::fprintf(stderr, "\n");
        }
        // Every reader must cope with missing arguments; the checks below read up to 8.
        Arguments padded = args;
        padded.resize(std::max<std::size_t>(padded.size(), 8));

        switch (entry) {
        case 0: {
            if (const auto depth = certificate_depth(padded[1])) {
                FUZZ_CHECK(*depth < 100);
                record_certificate(c, *depth, base64_der(padded[2]));
            }
            FUZZ_CHECK(c.chain.size() <= 16);
            break;
        }
        case 1: {
            const EhloInput ehlo = ehlo_input(args, now);
            FUZZ_CHECK(ehlo.leaf_der.size() <= padded[6].size());
            const Decision d = acl_ehlo(*site, c, ehlo, [&](const IpAddress&) { return ptr_answer(padded[7]); });
            check_decision(d);
            ehlo_passed = d.reply.code == 250 && ehlo.tls_active && c.facts.authenticated;
            FUZZ_CHECK(c.facts.authenticated == (d.reply.code == 250 && ehlo.tls_active));
            if (c.facts.authenticated) {
                FUZZ_CHECK(c.facts.identity && !c.facts.ehlo_name.empty());
                FUZZ_CHECK(normalize_host_name(c.facts.ehlo_name) == c.facts.ehlo_name);
            }
            break;
        }
        case 2: {
            const Decision d = acl_mail(*site, c, padded[1]);
            check_decision(d);
            if (d.reply.code == 250)
                FUZZ_CHECK(ehlo_passed && c.facts.in_mail);
            break;
        }
        case 3: {
            const Decision d = acl_rcpt(*site, c, padded[1]);
            check_decision(d);
            if (d.reply.code == 250) {
                FUZZ_CHECK(ehlo_passed && !c.facts.envelope.recipients.empty());
                const auto box = parse_mailbox(c.facts.envelope.recipients.back());
                FUZZ_CHECK(box);
                if (c.facts.listener == ListenerKind::public_network)
                    FUZZ_CHECK(site->public_config->is_local_domain(box->domain));
            }
            break;
        }
        case 4: {
            const DataInput data_in = data_input(args, now);
            const Decision d = acl_data(*site, c, data_in);
            check_decision(d);
            if (d.reply.code == 250) {
                FUZZ_CHECK(ehlo_passed && c.mpc);
                check_field(c.received);
                check_field(c.authentication_results);
                check_field(c.mpc_field);
                FUZZ_CHECK(trace_field(c, "mpc") == c.mpc_field);
            } else {
                FUZZ_CHECK(!c.mpc && c.received.empty() && c.authentication_results.empty() && c.mpc_field.empty());
            }
            break;
        }
        case 5: {
            const std::string& field = trace_field(c, padded[1]);
            if (!field.empty())
                check_field(field);
            break;
        }
        case 6: {
            if (const auto local = route_local_part(padded[1])) {
                FUZZ_CHECK(*local == padded[1]);
                FUZZ_CHECK(!local->empty() && local->front() != '.' && local->find("..") == std::string::npos);
                FUZZ_CHECK(local->find_first_of("/:") == std::string::npos && !fuzz::has_control(*local));
                FUZZ_CHECK(std::string_view("!^+@").find(local->front()) == std::string_view::npos);
            }
            break;
        }
        case 7: {
            const Route r = route(padded);
            if (r.status == DnsStatus::answer) {
                FUZZ_CHECK(!r.hops.empty());
                FUZZ_CHECK(r.hosts.find_first_of(" \t\r\n") == std::string::npos);
                std::size_t items = 1;
                for (std::size_t pos = r.hosts.find("::"); pos != std::string::npos; pos = r.hosts.find("::", pos + 2))
                    ++items;
                FUZZ_CHECK(items == r.hops.size() + 1);
            } else {
                FUZZ_CHECK(r.hops.empty() && r.hosts.empty());
            }
            hops.insert(hops.end(), r.hops.begin(), r.hops.end());
            if (hops.size() > 64)
                hops.clear();
            // amtp_target on the same arguments' address and port.
            if (const auto ip = IpAddress::parse(padded[4])) {
                const std::string target = hop_target(hops, *ip, number_argument(padded[5]));
                FUZZ_CHECK(target.empty() || std::any_of(hops.begin(), hops.end(), [&](const Route::Hop& h) {
                               return h.target == target && h.address == *ip;
                           }));
            }
            break;
        }
        case 8: {
            const std::string mpc = outgoing_mpc(*site, padded[1], padded[2]);
            if (!mpc.empty()) {
                const auto parsed = parse_mpc(mpc);
                FUZZ_CHECK(parsed.value && parsed.value->str() == mpc);
            }
            // The header field's value without the white space around it, CR and LF
            // included, as the core takes it (a folded or CRLF-ended field).
            std::string trimmed = padded[1];
            trimmed.erase(0, trimmed.find_first_not_of(" \t\r\n"));
            trimmed.erase(trimmed.find_last_not_of(" \t\r\n") + 1);
            if (!trimmed.empty()) {
                const auto given = parse_mpc(trimmed);
                FUZZ_CHECK(mpc == (given.value ? given.value->str() : std::string()));
            }
            break;
        }
        case 9: {
            // amtp_server_cert: the chain is collected from the top down, checked at the leaf.
            const unsigned depth = number_argument(padded[3]);
            if (depth < 16) {
                if (server_chain.size() <= depth)
                    server_chain.resize(depth + 1);
                server_chain[depth] = base64_der(padded[4]);
            }
            if (depth == 0) {
                std::vector<std::string> der;
                for (const auto& blob : server_chain)
                    if (!blob.empty())
                        der.push_back(blob);
                server_chain.clear();
                const auto ip = IpAddress::parse(padded[1]);
                const std::string target = ip ? hop_target(hops, *ip, number_argument(padded[2])) : std::string();
                const IdentityResult id = check_server(*site, der, target, now);
                FUZZ_CHECK(id.ok() == (id.reason == Reason::none));
                FUZZ_CHECK(!id.ok()); // the site trusts no public CA: no server can pass
            }
            break;
        }
        }
    }
    // The core reads OpenSSL's error queue for details; emptied so every run frees
    // what it allocated (as fuzz_certificate does).
    ERR_clear_error();
    return 0;
}
