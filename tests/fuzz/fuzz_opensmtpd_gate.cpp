// The OpenSMTPD adapter's gate: the command Pipeline between an AMTP client and smtpd
// (plugins/opensmtpd/gate/pipeline.cpp), fed by both peers in any order, and the
// identity channel's line codec (common/registration.cpp), whose fields carry
// certificate text the client chose.
//
// Input: one control byte, then operations: an operation byte and, for the first
// two kinds, a length byte and that many bytes.
//   [0] bit 0: hold_acks (acknowledge after delivery).
//   op % 5: 0 client bytes; 1 smtpd bytes; 2 release_ack(); 3 one line for the
//   filter's decoders (decode_gate_line, decode_config_line); 4 a Registration
//   built from the bytes (fields split on NUL) for encode_registration.
//
// Invariants: what reaches smtpd is exactly a prefix of what the client sent (the gate
// neither invents, drops nor reorders client bytes); after a command overflow nothing
// more is passed on; an acknowledgement is held only with hold_acks and only until
// released; everything read by the client came from smtpd (its length covers smtpd's
// bytes passed on, plus only the PIPELINING lines), with no bare LF when smtpd sent
// none; an encoded record is one line
// that decodes back to the same record, and a decoded line encodes to a line that
// decodes alike.
#include "fuzz_common.hpp"

#include "common/registration.hpp"
#include "gate/pipeline.hpp"

#include <string>
#include <vector>

using namespace amtp;
using namespace amtp::opensmtpd;

namespace {

bool same(const Registration& a, const Registration& b)
{
    if (!(a.key == b.key) || a.listener != b.listener || a.tls.version != b.tls.version ||
        a.tls.cipher != b.tls.cipher || a.tls.identity.ok() != b.tls.identity.ok())
        return false;
    if (!a.tls.identity.ok())
        return a.tls.identity.reason == b.tls.identity.reason && a.tls.identity.detail == b.tls.identity.detail;
    const Identity& x = *a.tls.identity.identity;
    const Identity& y = *b.tls.identity.identity;
    return x.names == y.names && x.subject == y.subject && x.issuer == y.issuer && x.serial == y.serial &&
           x.sha256 == y.sha256 && x.not_before == y.not_before && x.not_after == y.not_after &&
           x.trust == y.trust && x.private_network == y.private_network;
}

void check_line(const std::string& line)
{
    FUZZ_CHECK(!line.empty() && line.back() == '\n');
    FUZZ_CHECK(line.find_first_of("\r\n") == line.size() - 1);
}

void check_decoded(std::string_view line)
{
    if (const auto m = decode_gate_line(line)) {
        const std::string again = m->registration ? encode_registration(m->record) : encode_unregistration(m->record.key);
        check_line(again);
        const auto back = decode_gate_line(again);
        FUZZ_CHECK(back && back->registration == m->registration);
        FUZZ_CHECK(back->record.key == m->record.key);
        if (m->registration)
            FUZZ_CHECK(same(back->record, m->record));
    }
    if (const auto c = decode_config_line(line)) {
        const std::string again = encode_config(*c);
        check_line(again);
        const auto back = decode_config_line(again);
        FUZZ_CHECK(back && back->ini_path == c->ini_path && back->ini_text == c->ini_text &&
                   back->policy_path == c->policy_path && back->policy_text == c->policy_text);
    }
}

// A registration made of the client-chosen parts of a certificate.
void check_encoded(std::string_view bytes, std::uint8_t control)
{
    std::vector<std::string> f;
    std::size_t start = 0;
    for (;;) {
        const auto nul = bytes.find('\0', start);
        f.emplace_back(bytes.substr(start, nul == std::string_view::npos ? std::string_view::npos : nul - start));
        if (nul == std::string_view::npos)
            break;
        start = nul + 1;
    }
    f.resize(8);
    Registration r;
    r.key = {*IpAddress::parse(control & 1 ? "2001:db8::7" : "127.0.0.2"), static_cast<std::uint16_t>(control * 257)};
    r.listener = control & 2 ? ListenerKind::private_network : ListenerKind::public_network;
    r.tls.version = f[0];
    r.tls.cipher = f[1];
    if (control & 4) {
        r.tls.identity.reason = Reason::untrusted_issuer;
        r.tls.identity.detail = f[2];
    } else {
        Identity i;
        // Names are joined with ',' on the channel: a name never holds one (DNS names).
        for (std::string_view n : {std::string_view(f[2]), std::string_view(f[3])})
            if (!n.empty() && n.find(',') == std::string_view::npos)
                i.names.emplace_back(n);
        i.subject = f[4];
        i.issuer = f[5];
        i.serial = f[6];
        i.sha256 = f[7];
        i.not_before = static_cast<std::time_t>(control) * 1000;
        i.not_after = -static_cast<std::time_t>(control);
        i.trust = control & 8 ? TrustKind::pinned : TrustKind::private_ca;
        i.private_network = f[0];
        r.tls.identity.identity = i;
    }
    const std::string line = encode_registration(r);
    check_line(line);
    const auto back = decode_gate_line(line);
    FUZZ_CHECK(back && back->registration && same(back->record, r));
}

bool has_bare_lf(std::string_view s)
{
    for (std::size_t i = 0; i < s.size(); ++i)
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            return true;
    return false;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fuzz::Input in(data, size);
    const std::uint8_t flags = in.byte();
    Pipeline p;
    p.hold_acks(flags & 1);

    std::string client_sent, server_sent, to_server, to_client;
    std::size_t pipelining_lines = 0;
    bool overflowed = false;
    while (!in.empty()) {
        const std::uint8_t op = in.byte() % 5;
        if (op == 0 || op == 1) {
            const std::string_view bytes = in.take(in.byte());
            fuzz::trace(op == 0 ? "client< " : "smtpd< ", bytes);
            if (op == 0) {
                client_sent += bytes;
                p.from_client(bytes);
            } else {
                server_sent += bytes;
                p.from_server(bytes);
            }
        } else if (op == 2) {
            p.release_ack();
            FUZZ_CHECK(!p.held_ack());
        } else if (op == 3) {
            check_decoded(in.line());
            continue;
        } else {
            const std::uint8_t control = in.byte();
            check_encoded(in.take(in.byte()), control);
            continue;
        }
        const std::string for_server = p.take_for_server();
        const std::string for_client = p.take_for_client();
        fuzz::trace("smtpd> ", for_server);
        fuzz::trace("client> ", for_client);
        FUZZ_CHECK(!overflowed || for_server.empty());
        overflowed = p.command_overflow();
        to_server += for_server;
        to_client += for_client;
        for (auto pos = for_client.find("PIPELINING\r\n"); pos != std::string::npos;
             pos = for_client.find("PIPELINING\r\n", pos + 1))
            ++pipelining_lines;
        FUZZ_CHECK(client_sent.compare(0, to_server.size(), to_server) == 0);
        FUZZ_CHECK(!p.held_ack() || (flags & 1));
        // smtpd's bytes, less a held reply line and what waits for a line end, plus the
        // "250 PIPELINING\r\n" lines (16 bytes, one "-" more when a line is split).
        FUZZ_CHECK(to_client.size() <= server_sent.size() + 17 * pipelining_lines);
        // smtpd ends its lines in CRLF; the gate's edits must not leave a bare LF.
        if (!has_bare_lf(server_sent))
            FUZZ_CHECK(!has_bare_lf(to_client));
    }
    return 0;
}
