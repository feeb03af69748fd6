#include "session.hpp"

#include "amtp/message_headers.hpp"
#include "amtp/trace_headers.hpp"

#include <algorithm>
#include <utility>

namespace amtp::haraka {

std::optional<Reason> reason_by_name(std::string_view name)
{
    // Reasons are a dense enum from none to protocol_error; reason_name is the one table.
    for (int i = 0; i <= static_cast<int>(Reason::protocol_error); ++i) {
        const auto r = static_cast<Reason>(i);
        if (name == reason_name(r))
            return r;
    }
    return std::nullopt;
}

std::optional<DnsStatus> dns_status_by_name(std::string_view name)
{
    for (const auto s : {DnsStatus::answer, DnsStatus::negative, DnsStatus::temporary})
        if (name == dns_status_name(s))
            return s;
    return std::nullopt;
}

ListenerKind listener_of(const Site& site, const IpAddress& local, unsigned port)
{
    const ListenerKind kind = site.listener(local, port);
    if (kind == ListenerKind::private_network)
        return kind;
    // Work-around: Site::listener compares the address exactly, but Haraka listening on
    // a wildcard endpoint ("private = 0.0.0.0:2627") reports the address the client
    // reached. A wildcard endpoint on the port matches every local address it accepts
    // connections for: 0.0.0.0 the IPv4 ones, :: (dual-stack) all. The core's
    // Site::listener could do this itself.
    for (const auto& e : site.settings.listen.private_endpoints) {
        const bool unspecified = std::all_of(e.address.bytes(), e.address.bytes() + e.address.size(),
                                             [](std::uint8_t b) { return b == 0; });
        if (e.port == port && unspecified && (!e.address.is_v4() || local.is_v4()))
            return ListenerKind::private_network;
    }
    return kind;
}

Session::Session(std::shared_ptr<const Site> site, const IpAddress& peer, const IpAddress& local, unsigned port,
                 std::string session_id, bool can_relay)
    : site_(std::move(site)), rules_(site_->config(listener_of(*site_, local, port))),
      facts_(rules_.open(peer, std::move(session_id), rules_.config().listener)), can_relay_(can_relay)
{
}

std::string Session::tls(IdentityResult identity, std::string version, std::string cipher)
{
    TlsInfo info;
    info.identity = std::move(identity);
    info.version = std::move(version);
    info.cipher = std::move(cipher);
    return rules_.tls_established(facts_, std::move(info));
}

Verdict Session::rcpt(std::string_view argument)
{
    Verdict v = rules_.rcpt(facts_, argument);
    if (v.refused() || can_relay_ || facts_.envelope.local.empty() || facts_.envelope.local.back())
        return v;
    // Work-around: the rulebook accepts another domain's recipient on a private
    // listener, as amtpd (which always has its queue) can relay it; ServerConfig has no
    // "this host cannot relay" for a Haraka without its relay sidecar, so the recipient
    // the rulebook just added is taken back and refused as on a public listener.
    const std::string address = facts_.envelope.recipients.back();
    facts_.envelope.recipients.pop_back();
    facts_.envelope.local.pop_back();
    return rules_.refusal(facts_, "rcpt", Reason::relay_denied, address, true);
}

MessageVerdict Session::message(const MessageInput& input)
{
    HeaderScanner scanner(authserv_id(rules_.config().hostname));
    // One answer per physical line; owner[i]: the header entry line i belongs to.
    std::vector<bool> keep;
    std::vector<std::size_t> owner;
    // Lines the scanner held come back (kept after all) just before the line that
    // settled them: they are the last lines marked dropped so far.
    const auto mark_released = [&] {
        std::size_t n = scanner.take_released().size();
        for (std::size_t i = keep.size(); n > 0 && i-- > 0;)
            if (!keep[i]) {
                keep[i] = true;
                --n;
            }
    };
    for (std::size_t entry = 0; entry < input.header.size(); ++entry) {
        std::string_view text = input.header[entry];
        while (!text.empty()) {
            const auto lf = text.find('\n');
            std::string_view line = text.substr(0, lf);
            text.remove_prefix(lf == std::string_view::npos ? text.size() : lf + 1);
            if (!line.empty() && line.back() == '\r')
                line.remove_suffix(1);
            const bool kept = scanner.line(line);
            mark_released();
            keep.push_back(kept);
            owner.push_back(entry);
        }
    }
    scanner.finish();
    mark_released();

    message_ = MessageFacts{};
    message_.size = input.size;
    message_.line_too_long = input.line_too_long;
    message_.bare_linefeed = input.bare_linefeed;
    message_.take_header(scanner);
    MessageVerdict out;
    out.verdict = rules_.message(facts_, message_);
    if (out.verdict.refused())
        return out;
    // The scanner removes whole fields (a carrier, a forged Authentication-Results), and
    // Haraka's entries are whole fields: an entry goes when any of its lines does.
    for (std::size_t i = 0; i < keep.size(); ++i)
        if (!keep[i] && (out.remove.empty() || out.remove.back() != owner[i]))
            out.remove.push_back(owner[i]);
    return out;
}

} // namespace amtp::haraka
