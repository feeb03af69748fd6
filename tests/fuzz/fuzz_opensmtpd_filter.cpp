// The OpenSMTPD adapter's filter process: smtpd's filter-protocol lines (0.6 and 0.7)
// through parse_event and the Engine that answers them (plugins/opensmtpd/filter/),
// with the gate's registrations (decode_gate_line) interleaved as they would arrive.
//
// Input: one control byte, then lines separated by LF.
//   [0] bit 0: the gate registers 127.0.0.8:5 before the first line, as a verified
//       identity host1.isp.test (private CA); bit 1: that registration carries a
//       refused certificate (cert_expired) instead; bit 2: the engine gets its
//       configuration only at the first "tick" line (sessions wait at connect).
//   A line starting with "R\t" or "U\t" is a gate-channel line for decode_gate_line;
//   "tick" runs the engine's timer past every deadline; any other line is smtpd's.
// Every registration is taken on a private listener: a public one makes the EHLO wait
// for a real PTR lookup, which a fuzz target cannot serve (the core's ServerSession,
// fuzzed on its own by fuzz_server_session, owns that path).
//
// Invariants: everything written for smtpd is whole lines, each well-formed by the
// rule of plugins/opensmtpd/tests/output_lines.hpp (smtpd exits on one malformed
// line); a filter request other than connect and data-line is answered at once, by
// exactly one filter-result line with its session and token (smtpd waits for it); the
// final data-line "." is answered with the dot line last; no result names a session or
// token that did not ask; and a connect still waiting at the end is answered by the
// timer, unless its session ended.
#include "fuzz_common.hpp"

#include "common/registration.hpp"
#include "filter/engine.hpp"
#include "filter/protocol.hpp"
#include "tests/output_lines.hpp"

#include "amtp/policy.hpp"
#include "amtp/settings.hpp"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

using namespace amtp;
using namespace amtp::opensmtpd;

namespace {

EngineConfig engine_config()
{
    Settings s;
    s.hostname = "mx.b.test";
    s.delivery.local_domains = {"b.test"};
    auto policy = std::make_shared<const Policy>(Policy::load_string(
        "<amtp-policy><advertise><deny mpc=\"*/optout\"/></advertise>"
        "<recipient address=\"nocom@b.test\"><deny mpc=\"com/*\"/></recipient></amtp-policy>",
        "fuzz.xml"));
    // As amtp-opensmtpd-filter configures it, but no wait for a registration.
    EngineConfig c = make_engine_config(s, std::move(policy));
    c.registration_wait = std::chrono::milliseconds(0);
    return c;
}

GateMessage registration(bool refused)
{
    GateMessage m;
    m.registration = true;
    m.record.key = {*IpAddress::parse("127.0.0.8"), 5};
    m.record.listener = ListenerKind::private_network;
    m.record.tls.version = "TLSv1.3";
    m.record.tls.cipher = "TLS_AES_256_GCM_SHA384";
    m.record.token = "00112233445566778899aabbccddeeff";
    if (refused) {
        m.record.tls.identity.reason = Reason::cert_expired;
    } else {
        Identity i;
        i.names = {"host1.isp.test"};
        i.subject = "CN=host1.isp.test";
        i.sha256 = std::string(64, 'a');
        i.trust = TrustKind::private_ca;
        i.private_network = "isp";
        m.record.tls.identity.identity = i;
    }
    return m;
}

struct ResultLine {
    std::string session;
    std::string token;
    bool dot = false; // filter-dataline|s|t|.
};

// The lines of one emit, each checked; the session and token of each answer.
std::vector<ResultLine> check_output(const std::string& out)
{
    std::vector<ResultLine> results;
    FUZZ_CHECK(!out.empty() && out.back() == '\n');
    std::size_t start = 0;
    while (start < out.size()) {
        const auto nl = out.find('\n', start);
        const std::string_view line(out.data() + start, nl - start);
        fuzz::trace("> ", line);
        FUZZ_CHECK(test::well_formed_output_line(line));
        start = nl + 1;
        const bool result = line.rfind("filter-result|", 0) == 0;
        if (!result && line.rfind("filter-dataline|", 0) != 0)
            continue;
        const auto fields = split_fields(line);
        FUZZ_CHECK(fields.size() >= 4);
        results.push_back({std::string(fields[1]), std::string(fields[2]), !result && fields.size() == 4 && fields[3] == "."});
    }
    return results;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    // Never used for a lookup (every registration is private), but the engine needs one.
    static Resolver resolver{ResolverOptions{"127.0.0.1@9", "", {"test."}, std::chrono::milliseconds(200)}};
    static const EngineConfig config = engine_config();

    fuzz::Input in(data, size);
    const std::uint8_t flags = in.byte();

    std::vector<ResultLine> emitted;
    Engine engine({}, [&emitted](const std::string& lines) {
        const auto results = check_output(lines);
        emitted.insert(emitted.end(), results.begin(), results.end());
    });
    bool configured = false;
    auto configure = [&] {
        if (!configured)
            engine.configure(config, resolver);
        configured = true;
    };
    if (!(flags & 4))
        configure();
    if (flags & 1)
        engine.on_gate(registration(flags & 2));

    // Sessions whose connect phase may still be waiting, by the token it must be answered with.
    std::map<std::string, std::string> waiting_connect;
    while (!in.empty()) {
        const std::string_view line = in.line();
        fuzz::trace("< ", line);
        emitted.clear();
        if (line == "tick") {
            configure();
            engine.tick(Engine::Clock::now() + std::chrono::hours(1));
            for (const auto& r : emitted) {
                const auto it = waiting_connect.find(r.session);
                FUZZ_CHECK(it != waiting_connect.end() && it->second == r.token);
                waiting_connect.erase(it);
            }
            FUZZ_CHECK(waiting_connect.empty());
            continue;
        }
        if (line.size() >= 2 && (line[0] == 'R' || line[0] == 'U') && line[1] == '\t') {
            auto m = decode_gate_line(line);
            if (!m)
                continue;
            m->record.listener = ListenerKind::private_network;
            engine.on_gate(*m);
            // A registration may release connect phases waiting for it.
            for (const auto& r : emitted) {
                const auto it = waiting_connect.find(r.session);
                FUZZ_CHECK(it != waiting_connect.end() && it->second == r.token);
                waiting_connect.erase(it);
            }
            continue;
        }

        const Event event = parse_event(line);
        engine.on_smtpd_line(line);
        const auto* report = std::get_if<ReportEvent>(&event);
        if (report && report->event == "link-disconnect")
            waiting_connect.erase(report->session);
        const auto* f = std::get_if<FilterEvent>(&event);
        if (!f) {
            // Reports and configuration answer nothing, except that a command smtpd
            // reports never releases a connect phase (only the gate or the timer do).
            FUZZ_CHECK(emitted.empty() || std::holds_alternative<ConfigEvent>(event));
            continue;
        }
        if (f->phase == "data-line") {
            if (f->param == ".") {
                FUZZ_CHECK(!emitted.empty());
                FUZZ_CHECK(emitted.back().dot && emitted.back().session == f->session && emitted.back().token == f->token);
                for (const auto& r : emitted)
                    FUZZ_CHECK(r.session == f->session && r.token == f->token && (r.dot == (&r == &emitted.back())));
            } else {
                FUZZ_CHECK(emitted.empty());
            }
            continue;
        }
        if (f->phase == "connect") {
            // A connect replaces one that was waiting in the same session (smtpd
            // never sends two, but the engine must not answer a stale token later).
            FUZZ_CHECK(emitted.size() <= 1);
            if (emitted.empty()) {
                waiting_connect[f->session] = f->token;
            } else {
                FUZZ_CHECK(emitted.front().session == f->session && emitted.front().token == f->token);
                waiting_connect.erase(f->session);
            }
            continue;
        }
        FUZZ_CHECK(emitted.size() == 1);
        FUZZ_CHECK(emitted.front().session == f->session && emitted.front().token == f->token && !emitted.front().dot);
    }
    return 0;
}
