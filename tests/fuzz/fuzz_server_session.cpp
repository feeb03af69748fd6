// The receiving session fed arbitrary command and data streams.
//
// Input: four control bytes, then the bytes the peer sends.
//   [0] bit 0: private listener; bit 1: STARTTLS mode; bit 2: header carrier accepted;
//       bit 3: the TLS handshake refused the certificate; bit 4: IPv6 peer;
//       bits 5-7: after which chunk (1-7; 0: never) the host calls shutdown().
//   [1] how the host answers a PTR lookup: 0 the certificate's name, 1 no PTR,
//       2 temporary failure, 3 another name, 4 unconfirmed, 5 unchecked (temporary);
//       bit 3: a timeout() after the last chunk.
//   [2] how the host answers a delivery: 0/3 stored, 1 storage_full, 2 storage_temporary.
//   [3] seed of the chunk sizes (1 to 64 bytes, or whole lines when 0).
// The session is run like a host runs it: after every chunk the output is taken, a
// lookup or a delivery asked for is answered, a TLS handshake asked for is done.
//
// Invariants: every output line ends in CRLF, every reply line starts with a code
// 200-599 followed by ' ', '-' or the end of the line, and a multi-line reply keeps
// its code; nothing is written once the session asked to close; a delivery has at
// least one recipient and trace fields with CRLF line ends and no other CR, LF or
// control characters; no log line contains CR or LF; after a STARTTLS handshake
// nothing that was buffered before it is answered.
#include "fuzz_common.hpp"

#include "amtp/server_session.hpp"

#include <memory>

using namespace amtp;

namespace {

std::shared_ptr<const ServerConfig> make_config(std::uint8_t flags)
{
    auto policy = std::make_shared<Policy>();
    policy->advertise = DeclarationList({{false, *MpcPattern::parse("*/optout")}});
    policy->domains["b.test"] =
        DeclarationList({{false, *MpcPattern::parse("com/*")}, {true, *MpcPattern::parse("com/confirmed")}});
    policy->recipients["carol@b.test"] = DeclarationList({{true, *MpcPattern::parse("com/*")}});
    policy->recipients["dave@b.test"] = DeclarationList({{false, *MpcPattern::parse("*/*")}});
    policy->senders["news@b.test"] = MpcValue{"com", "optin"};

    auto config = std::make_shared<ServerConfig>();
    config->hostname = "mx.b.test";
    config->listener = (flags & 1) ? ListenerKind::private_network : ListenerKind::public_network;
    config->starttls = (flags & 2) != 0;
    config->accept_header_carrier = (flags & 4) != 0;
    config->local_domains = {"b.test"};
    config->policy = policy;
    config->limits.max_message_size = 2000;
    config->limits.max_recipients = 3;
    config->limits.max_errors = 5;
    return config;
}

TlsInfo make_tls(bool refused)
{
    TlsInfo t;
    t.version = "TLSv1.3";
    t.cipher = "TLS_AES_256_GCM_SHA384";
    if (refused) {
        t.identity.reason = Reason::untrusted_issuer;
        t.identity.detail = "unable to get local issuer certificate";
        return t;
    }
    Identity id;
    id.names = {"mx.a.test", "*.a.test"};
    id.subject = "CN=mx.a.test";
    id.issuer = "CN=Test CA";
    id.serial = "0A";
    id.sha256 = std::string(64, 'a');
    id.not_before = 1700000000;
    id.not_after = 1900000000;
    t.identity.identity = id;
    return t;
}

ReverseDnsResult make_ptr(std::uint8_t mode)
{
    ReverseDnsResult r;
    r.status = DnsStatus::answer;
    switch (mode % 6) {
    case 0: r.names = {"mx.a.test"}; break;
    case 1: r.status = DnsStatus::negative; break;
    case 2: r.status = DnsStatus::temporary; r.error = "SERVFAIL"; break;
    case 3: r.names = {"other.a.test"}; break;
    case 4: r.forward_checked = true; r.unconfirmed = {"mx.a.test"}; break;
    default: r.forward_checked = true; r.unchecked = {"mx.a.test"}; break;
    }
    return r;
}

void check_output(const std::string& out, int& open_code)
{
    FUZZ_CHECK(fuzz::crlf_lines(out));
    std::string_view rest = out;
    while (!rest.empty()) {
        const auto end = rest.find("\r\n");
        const std::string_view line = rest.substr(0, end);
        rest.remove_prefix(end + 2);
        FUZZ_CHECK(line.size() >= 3);
        for (int i = 0; i < 3; ++i)
            FUZZ_CHECK(line[i] >= '0' && line[i] <= '9');
        const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        FUZZ_CHECK(code >= 200 && code <= 599);
        FUZZ_CHECK(line.size() == 3 || line[3] == ' ' || line[3] == '-');
        FUZZ_CHECK(!fuzz::has_control(line));
        if (open_code)
            FUZZ_CHECK(code == open_code);
        open_code = line.size() > 3 && line[3] == '-' ? code : 0;
    }
}

void check_delivery(const DeliveryRequest& d)
{
    FUZZ_CHECK(!d.envelope.recipients.empty());
    FUZZ_CHECK(d.envelope.recipients.size() == d.envelope.local.size());
    FUZZ_CHECK(fuzz::crlf_lines(d.trace));
    // The message as received: CRLF lines (a bare CR inside a line is the peer's).
    FUZZ_CHECK(d.message.empty() || d.message.back() == '\n');
    for (std::size_t i = d.message.find('\n'); i != std::string::npos; i = d.message.find('\n', i + 1))
        FUZZ_CHECK(i > 0 && d.message[i - 1] == '\r');
    std::string_view rest = d.trace;
    while (!rest.empty()) {
        const auto end = rest.find("\r\n");
        // A folded field keeps its leading white space; no other control character.
        std::string_view line = rest.substr(0, end);
        while (!line.empty() && line.front() == '\t')
            line.remove_prefix(1);
        FUZZ_CHECK(!fuzz::has_control(line));
        rest.remove_prefix(end + 2);
    }
    for (const auto& r : d.envelope.recipients)
        FUZZ_CHECK(!fuzz::has_control(r));
    FUZZ_CHECK(!fuzz::has_control(d.envelope.sender));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fuzz::Input in(data, size);
    const std::uint8_t flags = in.byte();
    const std::uint8_t dns_mode = in.byte();
    const std::uint8_t delivery_mode = in.byte();
    const std::uint8_t chunk_seed = in.byte();
    const unsigned shutdown_after = flags >> 5;

    bool log_ok = true;
    auto peer = *IpAddress::parse((flags & 16) ? "2001:db8::2" : "127.0.0.2");
    ServerSession session(make_config(flags), peer, "F1", [&log_ok](const std::string& line) {
        if (fuzz::has_cr_or_lf(line))
            log_ok = false;
    });
    int open_code = 0;
    bool closed = false;

    // One round of the host loop; `closed` stays true once the session asked to close.
    auto pump = [&] {
        for (int round = 0; round < 8; ++round) {
            const std::string out = session.take_output();
            fuzz::trace("> ", out);
            check_output(out, open_code);
            if (closed) {
                session.output_sent(); // nothing held back may come out after the close
                FUZZ_CHECK(session.take_output().empty());
                FUZZ_CHECK(out.empty());
                FUZZ_CHECK(!session.take_delivery());
                return;
            }
            if (session.wants_close()) {
                closed = true;
                return;
            }
            bool acted = false;
            if (!out.empty() && !session.wants_tls()) {
                // Written: commands held back behind 4 KiB of replies go on.
                session.output_sent();
                acted = true;
            }
            if (session.wants_tls()) {
                session.tls_established(make_tls(flags & 8));
                // STARTTLS injection: whatever followed STARTTLS in the plaintext
                // buffer is discarded, never answered after the handshake.
                FUZZ_CHECK(session.take_output().empty());
                acted = true;
            }
            if (session.take_lookup()) {
                session.reverse_dns_done(make_ptr(dns_mode));
                acted = true;
            }
            if (auto delivery = session.take_delivery()) {
                fuzz::trace("[delivery] ", delivery->trace + delivery->message);
                check_delivery(*delivery);
                const Reason failure = delivery_mode % 4 == 1   ? Reason::storage_full
                                       : delivery_mode % 4 == 2 ? Reason::storage_temporary
                                                                : Reason::none;
                session.delivery_done(failure, failure == Reason::none ? "" : "fuzz");
                acted = true;
            }
            if (!acted)
                return;
        }
    };

    session.start(flags & 2 ? std::nullopt : std::optional<TlsInfo>(make_tls(flags & 8)), 1800000000);
    pump();

    fuzz::Chunker chunker(chunk_seed);
    unsigned chunks = 0;
    while (!in.empty()) {
        const std::string_view chunk = chunker.next(in);
        // Bytes that arrive after the session asked to close are fed too (a host may
        // have read them with the QUIT): they must produce nothing.
        fuzz::trace("< ", chunk);
        session.receive(chunk);
        pump();
        if (++chunks == shutdown_after) {
            session.shutdown();
            pump();
        }
    }
    if (dns_mode & 8) {
        session.timeout();
        pump();
    }
    FUZZ_CHECK(log_ok);
    return 0;
}
