// Trace fields written by a receiving AMTP server (profile B7, draft s4.4.4).
//
// Everything a peer chose (EHLO name, PTR name from its DNS, certificate fields,
// recipient) goes through printable() and then through the escaping of the syntactic
// place it lands in (comment, quoted-string), and is capped in length, so no peer
// string can end the field, open a new one, unbalance a comment or push a line past
// RFC 5322's 998-character limit.
#include "amtp/trace_headers.hpp"

#include "amtp/log.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <vector>

namespace amtp {

namespace {

// RFC 5322 s2.1.1: lines SHOULD be at most 78 characters, MUST be at most 998.
constexpr std::size_t fold_at = 78;
// Cap for one peer-supplied value after escaping. A token is never folded inside, so
// this (plus the longest key) bounds a line well below 998.
constexpr std::size_t max_value = 300;

// A field assembled from unbreakable tokens; folding happens only between tokens, as
// CRLF + TAB, greedily at 78 characters, or where a new clause is wanted for legibility.
class FieldBuilder {
public:
    explicit FieldBuilder(std::string_view name) : name_(name) {}

    void token(std::string text) { tokens_.push_back({std::move(text), false}); }
    // The next token starts a continuation line.
    void new_line() { break_next_ = true; }
    void clause(std::string text)
    {
        tokens_.push_back({std::move(text), break_next_});
        break_next_ = false;
    }
    // A comment of several tokens, e.g. {"mx.a.test", "[127.0.0.2]"} -> "(mx.a.test [127.0.0.2])".
    void comment(std::vector<std::string> parts)
    {
        if (parts.empty())
            return;
        parts.front().insert(0, "(");
        parts.back() += ')';
        for (auto& p : parts)
            clause(std::move(p));
    }
    // For the ";" that ends a clause list (Received's date, A-R's authserv-id).
    void append_to_last(std::string_view text)
    {
        if (!tokens_.empty())
            tokens_.back().text += text;
    }

    std::string finish() const
    {
        std::string out(name_);
        out += ':';
        std::size_t line_len = out.size();
        bool first = true;
        for (const auto& t : tokens_) {
            const bool fold = !first && (t.break_before || line_len + 1 + t.text.size() > fold_at);
            if (fold) {
                out += "\r\n\t";
                line_len = 1;
            } else {
                out += ' ';
                ++line_len;
            }
            out += t.text;
            line_len += t.text.size();
            first = false;
        }
        out += "\r\n";
        return out;
    }

private:
    struct Token {
        std::string text;
        bool break_before;
    };
    std::string_view name_;
    std::vector<Token> tokens_;
    bool break_next_ = false;
};

bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 5321 Domain: dot-separated sub-domains, each Let-dig [Ldh-str]; at most 255
// octets. Only such names appear outside comments; anything else is quoted in one.
bool is_domain(std::string_view s)
{
    if (s.empty() || s.size() > 255)
        return false;
    std::size_t label = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
        } else if (is_alnum(c) || c == '-') {
            if (label == 0 && c == '-')
                return false;
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0 && s.back() != '-';
}

// Appends `piece` to `out` unless that would pass the cap; returns false once full.
bool append_capped(std::string& out, std::string_view piece)
{
    if (out.size() + piece.size() > max_value)
        return false;
    out += piece;
    return true;
}

// Peer text for the inside of a comment (RFC 5322 ccontent): printable ASCII, with
// "(", ")", "\" and the double quote we put around values written as quoted-pairs.
// Escapes are never cut in half by the cap; a capped value ends in "...".
std::string comment_text(std::string_view raw)
{
    std::string out;
    for (const char ch : raw) {
        std::string piece = printable(std::string_view(&ch, 1));
        std::string escaped;
        for (const char c : piece) {
            if (c == '(' || c == ')' || c == '\\' || c == '"')
                escaped += '\\';
            escaped += c;
        }
        if (!append_capped(out, escaped)) {
            out += "...";
            break;
        }
    }
    return out;
}

// RFC 2045 token (RFC 8601 `value`): no SPACE, CTLs or tspecials.
bool is_token(std::string_view s)
{
    if (s.empty() || s.size() > max_value)
        return false;
    static constexpr std::string_view tspecials = "()<>@,;:\\\"/[]?=";
    return std::all_of(s.begin(), s.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c > 0x20 && c < 0x7f && tspecials.find(ch) == std::string_view::npos;
    });
}

// RFC 8601 value: the token itself when it is one, else a quoted-string of the
// printable form (quotes and backslashes as quoted-pairs, capped).
std::string value_text(std::string_view raw)
{
    if (is_token(raw))
        return std::string(raw);
    std::string out;
    for (const char ch : raw) {
        std::string escaped;
        for (const char c : printable(std::string_view(&ch, 1))) {
            if (c == '"' || c == '\\')
                escaped += '\\';
            escaped += c;
        }
        if (!append_capped(out, escaped)) {
            out += "...";
            break;
        }
    }
    return "\"" + out + "\"";
}

std::string address_literal(const IpAddress& address)
{
    // RFC 5321 s4.1.3: IPv6 literals carry the "IPv6:" tag.
    return address.is_v4() ? "[" + address.str() + "]" : "[IPv6:" + address.str() + "]";
}

// RFC 5322 atext, so the session id can be written as an Atom (RFC 5321 "ID" clause).
bool is_atext(unsigned char c)
{
    static constexpr std::string_view specials = "!#$%&'*+-/=?^_`{|}~";
    return is_alnum(c) || (c != 0 && specials.find(static_cast<char>(c)) != std::string_view::npos);
}

std::string id_atom(std::string_view id)
{
    std::string out;
    for (const char ch : id.substr(0, 64))
        out += is_atext(static_cast<unsigned char>(ch)) ? ch : '_';
    return out;
}

// A recipient may appear as "for <...>" only when it cannot break the syntax around it.
bool is_plain_mailbox(std::string_view s)
{
    if (s.empty() || s.size() > 256)
        return false;
    static constexpr std::string_view unsafe = "<>()\\\";,";
    return std::all_of(s.begin(), s.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c > 0x20 && c < 0x7f && unsafe.find(ch) == std::string_view::npos;
    });
}

std::string_view strip_angles(std::string_view s)
{
    if (s.size() >= 2 && s.front() == '<' && s.back() == '>')
        return s.substr(1, s.size() - 2);
    return s;
}

// "private network <name>", kept on one line.
std::string private_network_text(const Identity& id)
{
    if (id.private_network.empty())
        return "private network";
    return "private network " + comment_text(id.private_network);
}

const char* trust_word(const Identity& id)
{
    return id.trust == TrustKind::pinned ? "pinned" : "verified";
}

} // namespace

std::string rfc5322_date(std::time_t when)
{
    // Names are spelled out here rather than taken from strftime so that the C locale
    // of whatever host embeds the core cannot change them.
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    // RFC 5322 years are four digits or more and at least 1900; clamp absurd clocks
    // into 1970..9999 rather than produce an unparsable date.
    constexpr std::time_t last = 253402300799; // 9999-12-31T23:59:59Z
    when = std::clamp<std::time_t>(when, 0, last);
    std::tm tm{};
    if (!gmtime_r(&when, &tm)) {
        when = 0;
        gmtime_r(&when, &tm);
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
                  months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

std::string received_field(const TraceInfo& info)
{
    FieldBuilder f("Received");
    const std::string literal = address_literal(info.peer_address);
    const bool ehlo_ok = is_domain(info.ehlo_name);

    // from: the EHLO name (verified against the certificate by now), then in the
    // TCP-info comment what the address resolved to and the address itself. A name
    // that is not a Domain cannot stand outside a comment: the literal takes its place.
    f.clause("from");
    f.clause(ehlo_ok ? info.ehlo_name : literal);
    std::vector<std::string> tcp;
    if (info.ptr_name.empty())
        tcp.push_back("unverified");   // private listener: the PTR check was skipped
    else if (is_domain(info.ptr_name))
        tcp.push_back(info.ptr_name);
    else
        tcp.push_back("ptr=\"" + comment_text(info.ptr_name) + "\"");
    tcp.push_back(literal);
    if (!ehlo_ok) {
        tcp.back() += ';';
        tcp.push_back("helo=\"" + comment_text(info.ehlo_name) + "\"");
    }
    if (info.identity && info.identity->is_private()) {
        tcp.back() += ';';
        tcp.push_back(private_network_text(*info.identity));
    }
    f.comment(std::move(tcp));

    f.new_line();
    f.clause("by");
    // by_host is our configured name; should it not be a Domain, the field must
    // still parse, so a placeholder stands in.
    f.clause(is_domain(info.by_host) ? info.by_host : "localhost");
    f.clause("with");
    f.clause("AMTP");
    if (const std::string id = id_atom(info.session_id); !id.empty()) {
        f.clause("id");
        f.clause(id);
    }

    // The identity the certificate proved and the MPC the message was accepted with.
    std::vector<std::string> tls;
    if (!info.tls_version.empty())
        tls.push_back(comment_text(info.tls_version));
    if (!info.tls_cipher.empty())
        tls.push_back(comment_text(info.tls_cipher));
    std::vector<std::string> items;   // "; "-separated
    if (!tls.empty()) {
        items = std::move(tls);
        items.back() += ';';
    }
    std::vector<std::string> facts;
    if (info.identity) {
        const Identity& id = *info.identity;
        facts.push_back(trust_word(id));
        if (!id.subject.empty())
            facts.push_back("subject=\"" + comment_text(id.subject) + "\"");
        if (!id.issuer.empty())
            facts.push_back("issuer=\"" + comment_text(id.issuer) + "\"");
        if (!id.serial.empty())
            facts.push_back("serial=" + comment_text(id.serial));
        if (!id.sha256.empty())
            facts.push_back("sha256=" + comment_text(id.sha256));
    } else {
        facts.push_back("no-certificate");
    }
    if (info.mpc)
        facts.push_back("mpc=" + comment_text(info.mpc->str()));
    for (std::size_t i = 0; i < facts.size(); ++i)
        items.push_back(facts[i] + (i + 1 < facts.size() ? ";" : ""));
    f.new_line();
    f.comment(std::move(items));

    const std::string_view rcpt = strip_angles(info.recipient);
    if (!rcpt.empty()) {
        f.new_line();
        if (is_plain_mailbox(rcpt)) {
            f.clause("for");
            f.clause("<" + std::string(rcpt) + ">");
        } else {
            f.comment({"for", "\"" + comment_text(rcpt) + "\""});
        }
    }
    f.append_to_last(";");
    f.clause(rfc5322_date(info.when));
    return f.finish();
}

std::string authserv_id(std::string_view hostname)
{
    return hostname.empty() ? std::string("localhost") : std::string(hostname);
}

std::string authentication_results_field(const std::string& id, const TraceInfo& info, std::string_view result,
                                         Reason reason)
{
    // RFC 8601 result keywords are ours to choose, never a peer's; anything else is a bug.
    static constexpr std::string_view results[] = {"pass", "fail", "none", "neutral",
                                                   "policy", "temperror", "permerror"};
    if (std::find(std::begin(results), std::end(results), result) == std::end(results))
        throw std::invalid_argument("authentication_results_field: bad result " + printable(result));

    FieldBuilder f("Authentication-Results");
    f.clause(value_text(authserv_id(id)));
    f.append_to_last(";");
    f.clause("x-amtp=" + std::string(result));
    if (reason != Reason::none) {
        // The reason name in a comment for people grepping logs against headers, and
        // RFC 8601's reasonspec with the reply text for software.
        f.comment({reason_name(reason)});
        f.clause("reason=" + value_text(reply_for(reason).text));
    } else if (info.identity && info.identity->is_private()) {
        std::vector<std::string> c;
        if (info.identity->trust == TrustKind::pinned)
            c = {"pinned", "certificate;"};
        c.push_back(private_network_text(*info.identity));
        f.comment(std::move(c));
    }
    // ptype "smtp": what the peer said in an SMTP command; "policy": what our
    // policy checked (the certificate and the Mail Policy Code).
    if (!info.ehlo_name.empty())
        f.clause("smtp.helo=" + value_text(info.ehlo_name));
    if (info.mpc)
        f.clause("policy.mpc=" + value_text(info.mpc->str()));
    if (info.identity) {
        const Identity& id = *info.identity;
        if (!id.subject.empty())
            f.clause("policy.cert-subject=" + value_text(id.subject));
        if (!id.issuer.empty())
            f.clause("policy.cert-issuer=" + value_text(id.issuer));
        if (!id.serial.empty())
            f.clause("policy.cert-serial=" + value_text(id.serial));
        if (!id.sha256.empty())
            f.clause("policy.cert-fingerprint=" + value_text(id.sha256));
    }
    return f.finish();
}

std::string mpc_field(const MpcValue& value)
{
    // The draft's field (s4.4.4). A parsed value is already role "/" class in lower
    // case; printable() only guards against a hand-built one.
    return "MPC: " + printable(value.str()) + "\r\n";
}

} // namespace amtp
