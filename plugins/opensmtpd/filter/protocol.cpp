#include "filter/protocol.hpp"

#include <cctype>

namespace amtp::opensmtpd {

namespace {

// Takes the next '|'-separated field off the front of `s`; false when there is none.
bool take_field(std::string_view& s, std::string_view& field, bool last = false)
{
    if (last) {
        field = s;
        s = {};
        return true;
    }
    const auto bar = s.find('|');
    if (bar == std::string_view::npos) {
        field = s;
        s = {};
        return false;
    }
    field = s.substr(0, bar);
    s.remove_prefix(bar + 1);
    return true;
}

// Nothing that ends or splits a line of ours gets through.
std::string clean(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (char c : s)
        out += (c == '\n' || c == '\r' || c == '\0') ? ' ' : c;
    return out;
}

bool is_word(std::string_view s)
{
    if (s.empty() || s.size() > 64)
        return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
            return false;
    return true;
}

} // namespace

bool is_safe_id(std::string_view id)
{
    if (id.empty() || id.size() > 32)
        return false;
    for (char c : id)
        if (!std::isxdigit(static_cast<unsigned char>(c)))
            return false;
    return true;
}

bool supported_version(std::string_view version)
{
    return version == "0.6" || version == "0.7";
}

std::vector<std::string_view> split_fields(std::string_view text)
{
    std::vector<std::string_view> out;
    std::string_view field;
    for (;;) {
        const bool more = take_field(text, field);
        out.push_back(field);
        if (!more)
            return out;
    }
}

Event parse_event(std::string_view line)
{
    if (!line.empty() && line.back() == '\n')
        line.remove_suffix(1);
    std::string_view rest = line;
    std::string_view kind;
    if (!take_field(rest, kind)) {
        if (kind == "config")
            return Malformed{"config line without a key"};
        return Malformed{"no field separator"};
    }
    if (kind == "config") {
        std::string_view key;
        const bool has_value = take_field(rest, key);
        if (!is_word(key))
            return Malformed{"bad config key"};
        return ConfigEvent{std::string(key), has_value ? clean(rest) : std::string()};
    }
    if (kind != "report" && kind != "filter")
        return Malformed{"unknown line type"};
    std::string_view version, timestamp, subsystem, name, session;
    if (!take_field(rest, version) || !take_field(rest, timestamp) || !take_field(rest, subsystem) ||
        !take_field(rest, name))
        return Malformed{"too few fields"};
    const bool more = take_field(rest, session);
    if (!is_word(version) || !is_word(subsystem) || !is_word(name) || timestamp.empty())
        return Malformed{"bad header field"};
    if (!is_safe_id(session))
        return Malformed{"bad session id"};
    if (kind == "report")
        return ReportEvent{std::string(version), std::string(subsystem), std::string(name), std::string(session),
                           more ? std::string(rest) : std::string()};
    if (!more)
        return Malformed{"filter request without a token"};
    std::string_view token;
    const bool has_param = take_field(rest, token);
    if (!is_safe_id(token))
        return Malformed{"bad token"};
    return FilterEvent{std::string(version), std::string(subsystem), std::string(name), std::string(session),
                       std::string(token), has_param ? std::string(rest) : std::string()};
}

std::string register_lines(const std::vector<std::string>& filter_phases, const std::vector<std::string>& reports)
{
    std::string out;
    for (const auto& p : filter_phases)
        out += "register|filter|smtp-in|" + clean(p) + "\n";
    for (const auto& r : reports)
        out += "register|report|smtp-in|" + clean(r) + "\n";
    return out + "register|ready\n";
}

std::string reply_text(const Reply& reply)
{
    Reply r = reply;
    if (r.code < 400 || r.code > 599)
        r = make_reply(451, "4.3.0", "Temporary AMTP filter error");
    std::string out = std::to_string(r.code);
    if (!r.enhanced.empty())
        out += " " + r.enhanced;
    if (!r.text.empty())
        out += " " + r.text;
    return clean(out);
}

namespace {
std::string result(std::string_view session, std::string_view token, std::string_view verdict)
{
    return "filter-result|" + std::string(session) + "|" + std::string(token) + "|" + clean(verdict) + "\n";
}
} // namespace

std::string proceed(std::string_view session, std::string_view token)
{
    return result(session, token, "proceed");
}

std::string reject(std::string_view session, std::string_view token, const Reply& reply)
{
    return result(session, token, "reject|" + reply_text(reply));
}

std::string disconnect(std::string_view session, std::string_view token, const Reply& reply)
{
    return result(session, token, "disconnect|" + reply_text(reply));
}

std::string rewrite(std::string_view session, std::string_view token, std::string_view value)
{
    return result(session, token, "rewrite|" + clean(value));
}

std::string dataline(std::string_view session, std::string_view token, std::string_view line)
{
    return "filter-dataline|" + std::string(session) + "|" + std::string(token) + "|" + clean(line) + "\n";
}

Reply last_reply(std::string_view wire)
{
    Reply found;
    Reply current;
    bool in_reply = false;
    while (!wire.empty()) {
        const auto nl = wire.find('\n');
        if (nl == std::string_view::npos)
            break;
        std::string_view line = wire.substr(0, nl);
        wire.remove_prefix(nl + 1);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0])) ||
            !std::isdigit(static_cast<unsigned char>(line[1])) || !std::isdigit(static_cast<unsigned char>(line[2])))
            continue;
        const bool final_line = line.size() == 3 || line[3] == ' ';
        if (!in_reply) {
            // The first line carries the text and the enhanced code.
            current = Reply{};
            current.code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
            std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
            const auto sp = text.find(' ');
            const std::string_view first = text.substr(0, sp);
            const bool enhanced = first.size() >= 5 && first[1] == '.' && (first[0] == '2' || first[0] == '4' || first[0] == '5');
            if (enhanced) {
                current.enhanced = std::string(first);
                text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
            }
            current.text = std::string(text);
            in_reply = true;
        }
        if (final_line) {
            found = current;
            in_reply = false;
        }
    }
    return found;
}

} // namespace amtp::opensmtpd
