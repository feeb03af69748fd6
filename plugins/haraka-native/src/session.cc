#include "session.hpp"

#include "amtp/message_headers.hpp"
#include "amtp/trace_headers.hpp"

#include <algorithm>
#include <utility>

namespace amtp::haraka {

namespace {

// The listener's configuration; without a relay (no sidecar) a copy that says so, so
// that the rulebook refuses another domain's recipient on a private listener too.
std::shared_ptr<const ServerConfig> config_for(const Site& site, ListenerKind kind, bool can_relay)
{
    if (can_relay || kind == ListenerKind::public_network)
        return site.config(kind);
    auto c = std::make_shared<ServerConfig>(*site.config(kind));
    c->can_relay = false;
    return c;
}

} // namespace

std::optional<DnsStatus> dns_status_by_name(std::string_view name)
{
    for (const auto s : {DnsStatus::answer, DnsStatus::negative, DnsStatus::temporary})
        if (name == dns_status_name(s))
            return s;
    return std::nullopt;
}

Session::Session(std::shared_ptr<const Site> site, const IpAddress& peer, const IpAddress& local, unsigned port,
                 std::string session_id, bool can_relay)
    : site_(std::move(site)), rules_(config_for(*site_, site_->listener(local, port), can_relay)),
      facts_(rules_.open(peer, std::move(session_id), rules_.config().listener))
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
    return rules_.rcpt(facts_, argument);
}

MessageVerdict Session::message(const MessageInput& input)
{
    HeaderScanner scanner(authserv_id(rules_.config().hostname));
    // One answer per physical line; owner[i]: the header entry line i belongs to.
    std::vector<std::string_view> lines;
    std::vector<std::size_t> owner;
    for (std::size_t entry = 0; entry < input.header.size(); ++entry)
        for (const auto line : header_lines(input.header[entry])) {
            lines.push_back(line);
            owner.push_back(entry);
        }
    const std::vector<bool> keep = scanner.scan(lines);

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
