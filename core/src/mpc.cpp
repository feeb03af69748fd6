#include "amtp/mpc.hpp"

#include "ascii.hpp"
#include "amtp/log.hpp"

#include <algorithm>
#include <array>

namespace amtp {

namespace {

using ascii::iequals;
using ascii::lower;

// The draft's vocabulary (s4.5). Anything else is refused: a server MUST NOT accept a
// message with a component not defined there.
constexpr std::array<std::string_view, 7> roles{"per", "com", "ngo", "net", "gov", "pol", "mpc"};
constexpr std::array<std::string_view, 6> classes{"individual", "autoresponse", "customer",
                                                  "optout",     "optin",        "confirmed"};

bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

template <std::size_t N>
bool contains_name(const std::array<std::string_view, N>& names, std::string_view s)
{
    return std::any_of(names.begin(), names.end(), [&](std::string_view n) { return iequals(n, s); });
}

template <std::size_t N>
std::string list(const std::array<std::string_view, N>& names)
{
    std::string out;
    for (const auto n : names)
        out += (out.empty() ? "" : " ") + std::string(n);
    return out;
}

// The ABNF's (ALPHA/DIGIT) *(ALPHA/DIGIT/"-"), ASCII only: a non-ASCII byte, a space
// or a control character can never be part of a component.
std::string token_problem(std::string_view part, const char* what)
{
    if (part.empty())
        return std::string("empty ") + what;
    const std::string quoted = "\"" + printable(part) + "\"";
    if (part == "*")
        return std::string(what) + " \"*\" is a pattern, not a value";
    if (!is_alnum(part.front()))
        return std::string(what) + " " + quoted + " must start with a letter or a digit";
    if (!std::all_of(part.begin(), part.end(), [](char c) { return is_alnum(c) || c == '-'; }))
        return std::string(what) + " " + quoted + " may contain only letters, digits and \"-\"";
    return {};
}

struct Checked {
    Reason reason = Reason::none;
    std::string problem;   // words for configuration errors; empty when valid
    std::string role;      // lower case, or "*"
    std::string cls;
};

// One checker for values and patterns, so both refuse exactly the same shapes.
Checked check(std::string_view text, bool wildcards)
{
    Checked out;
    auto fail = [&](Reason reason, std::string problem) {
        out.reason = reason;
        out.problem = std::move(problem);
        return out;
    };
    if (text.empty())
        return fail(Reason::mpc_malformed, "empty value");
    const auto slash = text.find('/');
    if (slash == std::string_view::npos)
        return fail(Reason::mpc_malformed, "no \"/\" between role and class");
    const auto role = text.substr(0, slash);
    const auto cls = text.substr(slash + 1);
    if (cls.find('/') != std::string_view::npos)
        return fail(Reason::mpc_malformed, "more than one \"/\"");

    // Shape first, on both sides, so that a malformed value is never reported as
    // merely undefined.
    const bool role_star = wildcards && role == "*";
    const bool cls_star = wildcards && cls == "*";
    if (!role_star)
        if (auto p = token_problem(role, "role"); !p.empty())
            return fail(Reason::mpc_malformed, p);
    if (!cls_star)
        if (auto p = token_problem(cls, "class"); !p.empty())
            return fail(Reason::mpc_malformed, p);

    if (!role_star && !contains_name(roles, role))
        return fail(Reason::mpc_undefined,
                    "undefined role \"" + std::string(role) + "\" (defined: " + list(roles) + ")");
    if (!cls_star && !contains_name(classes, cls))
        return fail(Reason::mpc_undefined,
                    "undefined class \"" + std::string(cls) + "\" (defined: " + list(classes) + ")");
    out.role = lower(role);
    out.cls = lower(cls);
    // Draft s4.5: the mpc role is valid only as mpc/individual.
    if (out.role == "mpc" && out.cls != "individual" && out.cls != "*")
        return fail(Reason::mpc_undefined, "role \"mpc\" is defined only as mpc/individual");
    return out;
}

bool is_separator(char c)
{
    return c == ' ' || c == '\t';
}

// Splits on spaces and tabs, and makes every "=" a token of its own, so that
// "ALLOW=x/y", "ALLOW x/y" and "ALLOW = x/y" all read the same.
std::vector<std::string_view> tokenize(std::string_view line)
{
    std::vector<std::string_view> tokens;
    std::size_t i = 0;
    while (i < line.size()) {
        if (is_separator(line[i])) {
            ++i;
        } else if (line[i] == '=') {
            tokens.push_back(line.substr(i, 1));
            ++i;
        } else {
            const auto start = i;
            while (i < line.size() && !is_separator(line[i]) && line[i] != '=')
                ++i;
            tokens.push_back(line.substr(start, i - start));
        }
    }
    return tokens;
}

} // namespace

MpcParseResult parse_mpc(std::string_view text)
{
    auto checked = check(text, false);
    MpcParseResult result;
    if (checked.reason != Reason::none)
        result.reason = checked.reason;
    else
        result.value = MpcValue{std::move(checked.role), std::move(checked.cls)};
    return result;
}

bool is_defined_role(std::string_view role)
{
    return contains_name(roles, role);
}

bool is_defined_class(std::string_view cls)
{
    return contains_name(classes, cls);
}

std::string mpc_problem(std::string_view text, bool wildcards)
{
    return check(text, wildcards).problem;
}

bool is_always_accepted(const MpcValue& value)
{
    return iequals(value.role, "mpc") && iequals(value.cls, "individual");
}

bool MpcPattern::matches(const MpcValue& value) const
{
    // Case-insensitive even though parsed values are lower case: a value built by
    // hand must not slip past a DENY by its spelling.
    return (role == "*" || iequals(role, value.role)) && (cls == "*" || iequals(cls, value.cls));
}

std::optional<MpcPattern> MpcPattern::parse(std::string_view text)
{
    auto checked = check(text, true);
    if (checked.reason != Reason::none)
        return std::nullopt;
    return MpcPattern{std::move(checked.role), std::move(checked.cls)};
}

bool DeclarationList::allows(const MpcValue& value) const
{
    if (is_always_accepted(value))
        return true;
    if (items_.empty())
        return true;
    // The implied first declaration is the opposite of the first real one.
    bool allowed = !items_.front().allow;
    for (const auto& d : items_)
        if (d.pattern.matches(value))
            allowed = d.allow;
    return allowed;
}

std::string DeclarationList::ehlo_line() const
{
    if (items_.empty())
        return {};
    std::string line = "MPC";
    for (const auto& d : items_)
        line += (d.allow ? " ALLOW=" : " DENY=") + d.pattern.str();
    return line;
}

std::optional<DeclarationList> DeclarationList::parse_ehlo_line(std::string_view line)
{
    // A caller may hand over the line with its terminator.
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
        line.remove_suffix(1);
    const auto tokens = tokenize(line);
    std::size_t i = 0;
    if (i < tokens.size() && iequals(tokens[i], "MPC"))
        ++i;

    std::vector<Declaration> items;
    while (i < tokens.size()) {
        const auto keyword = tokens[i++];
        Declaration d;
        if (iequals(keyword, "ALLOW") || iequals(keyword, "MPC-ALLOW"))
            d.allow = true;
        else if (iequals(keyword, "DENY") || iequals(keyword, "MPC-DENY"))
            d.allow = false;
        else
            return std::nullopt;
        if (i < tokens.size() && tokens[i] == "=")
            ++i;
        if (i >= tokens.size())
            return std::nullopt;
        // An undefined name makes the whole line unusable (documented in POLICY.md):
        // guessing at a partial list could turn a DENY into an ALLOW.
        auto pattern = MpcPattern::parse(tokens[i++]);
        if (!pattern)
            return std::nullopt;
        d.pattern = std::move(*pattern);
        items.push_back(std::move(d));
    }
    // The ABNF requires at least one declaration after the keyword.
    if (items.empty())
        return std::nullopt;
    return DeclarationList(std::move(items));
}

} // namespace amtp
