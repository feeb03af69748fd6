#include "amtp/smtp_syntax.hpp"

#include "ascii.hpp"
#include "amtp/names.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace amtp {

namespace {

using ascii::iequals;

std::string upper(std::string_view s)
{
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

bool is_atext(char c)
{
    const auto u = static_cast<unsigned char>(c);
    return std::isalnum(u) || (u < 0x80 && std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr && c != '\0');
}

bool valid_dot_atom(std::string_view s)
{
    if (s.empty() || s.front() == '.' || s.back() == '.')
        return false;
    char prev = 0;
    for (const char c : s) {
        if (c == '.' ? prev == '.' : !is_atext(c))
            return false;
        prev = c;
    }
    return true;
}

bool valid_quoted_string(std::string_view s)
{
    if (s.size() < 2 || s.front() != '"' || s.back() != '"')
        return false;
    for (std::size_t i = 1; i + 1 < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '\\') {
            if (++i + 1 >= s.size())
                return false;
            const auto q = static_cast<unsigned char>(s[i]);
            if (q < 0x20 || q > 0x7e)
                return false;
        } else if (c < 0x20 || c > 0x7e || c == '"') {
            return false;
        }
    }
    return true;
}

// ESMTP keyword: (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"); value: printable, no '=' or SP.
bool valid_keyword(std::string_view k)
{
    if (k.empty() || !std::isalnum(static_cast<unsigned char>(k.front())))
        return false;
    return std::all_of(k.begin(), k.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; });
}

bool valid_value(std::string_view v)
{
    return !v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u >= 0x21 && u <= 0x7e && c != '=';
    });
}

} // namespace

Command split_command(std::string_view line)
{
    Command cmd;
    const auto space = line.find(' ');
    cmd.verb = upper(line.substr(0, space));
    if (space != std::string_view::npos) {
        auto rest = line.substr(space);
        while (!rest.empty() && rest.front() == ' ')
            rest.remove_prefix(1);
        while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t'))
            rest.remove_suffix(1);
        cmd.argument = std::string(rest);
    }
    return cmd;
}

std::optional<PathCommand> parse_path_command(std::string_view argument, std::string_view keyword)
{
    const auto colon = argument.find(':');
    if (colon == std::string_view::npos || !iequals(argument.substr(0, colon), keyword))
        return std::nullopt;
    auto rest = argument.substr(colon + 1);
    if (!rest.empty() && rest.front() == ' ')
        rest.remove_prefix(1);
    if (rest.empty() || rest.front() != '<')
        return std::nullopt;
    // The path ends at the first '>' outside a quoted local part.
    std::size_t end = 1;
    bool quoted = false;
    for (; end < rest.size(); ++end) {
        const char c = rest[end];
        if (quoted && c == '\\') {
            ++end;
            continue;
        }
        if (c == '"')
            quoted = !quoted;
        else if (c == '>' && !quoted)
            break;
    }
    if (end >= rest.size())
        return std::nullopt;
    PathCommand out;
    auto path = rest.substr(1, end - 1);
    // A source route ("@a,@b:user@host") is obsolete; RFC 5321 says accept and ignore it.
    if (!path.empty() && path.front() == '@') {
        const auto route_end = path.find(':');
        if (route_end == std::string_view::npos)
            return std::nullopt;
        path.remove_prefix(route_end + 1);
    }
    out.address = std::string(path);
    auto params = rest.substr(end + 1);
    while (!params.empty()) {
        if (params.front() != ' ')
            return std::nullopt;
        while (!params.empty() && params.front() == ' ')
            params.remove_prefix(1);
        if (params.empty())
            break;
        const auto token = params.substr(0, params.find(' '));
        params.remove_prefix(token.size());
        EsmtpParameter p;
        const auto eq = token.find('=');
        p.keyword = upper(token.substr(0, eq));
        if (!valid_keyword(p.keyword))
            return std::nullopt;
        if (eq != std::string_view::npos) {
            p.has_value = true;
            p.value = std::string(token.substr(eq + 1));
            if (!valid_value(p.value))
                return std::nullopt;
        }
        out.parameters.push_back(std::move(p));
    }
    return out;
}

std::optional<Mailbox> parse_mailbox(std::string_view address)
{
    const auto at = address.rfind('@');
    if (at == std::string_view::npos || at == 0 || at > 64)
        return std::nullopt;
    const auto local = address.substr(0, at);
    if (!valid_dot_atom(local) && !valid_quoted_string(local))
        return std::nullopt;
    const auto domain = normalize_host_name(address.substr(at + 1));
    if (!domain || !is_fully_qualified(*domain))
        return std::nullopt;
    return Mailbox{std::string(local), *domain};
}

MpcParameter mpc_parameter(const std::vector<EsmtpParameter>& parameters, bool required)
{
    MpcParameter out;
    const EsmtpParameter* found = nullptr;
    for (const auto& p : parameters) {
        if (p.keyword != "MPC")
            continue;
        if (found) {
            out.reason = Reason::mpc_duplicate;
            return out;
        }
        found = &p;
    }
    if (!found) {
        if (required)
            out.reason = Reason::mpc_missing;
        return out;
    }
    if (!found->has_value) {
        out.reason = Reason::mpc_malformed;
        return out;
    }
    auto parsed = parse_mpc(found->value);
    out.value = std::move(parsed.value);
    out.reason = parsed.reason;
    return out;
}

} // namespace amtp
