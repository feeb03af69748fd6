// What a well-formed line from the filter to smtpd is: shared by the engine's unit
// tests and the fuzz target (tests/fuzz/fuzz_opensmtpd_filter.cpp), so both hold the
// output to one rule. smtpd exits as a whole on one malformed filter line.
//   register|<lower-case words, '|' and '-'>
//   filter-result|<hex>|<hex>|proceed
//   filter-result|<hex>|<hex>|rewrite|<text>
//   filter-result|<hex>|<hex>|reject|<4xx or 5xx> <text>     (disconnect likewise)
//   filter-dataline|<hex>|<hex>|<text>
// The line is given without its LF; no CR, LF or NUL may appear in it (smtpd reads C
// strings, so a NUL would cut the line short).
#pragma once

#include <cctype>
#include <string_view>

namespace amtp::opensmtpd::test {

namespace detail {

inline bool consume(std::string_view& s, std::string_view prefix)
{
    if (s.substr(0, prefix.size()) != prefix)
        return false;
    s.remove_prefix(prefix.size());
    return true;
}

// One or more hexadecimal digits, then '|'.
inline bool consume_hex_field(std::string_view& s)
{
    std::size_t n = 0;
    while (n < s.size() && std::isxdigit(static_cast<unsigned char>(s[n])))
        ++n;
    if (n == 0 || n >= s.size() || s[n] != '|')
        return false;
    s.remove_prefix(n + 1);
    return true;
}

} // namespace detail

inline bool well_formed_output_line(std::string_view line)
{
    using detail::consume;
    if (line.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
        return false;
    std::string_view s = line;
    if (consume(s, "register|")) {
        if (s.empty())
            return false;
        for (const char c : s)
            if (!((c >= 'a' && c <= 'z') || c == '|' || c == '-'))
                return false;
        return true;
    }
    if (consume(s, "filter-dataline|"))
        return detail::consume_hex_field(s) && detail::consume_hex_field(s);
    if (!consume(s, "filter-result|") || !detail::consume_hex_field(s) || !detail::consume_hex_field(s))
        return false;
    if (s == "proceed" || consume(s, "rewrite|"))
        return true;
    if (!consume(s, "reject|") && !consume(s, "disconnect|"))
        return false;
    return s.size() >= 4 && (s[0] == '4' || s[0] == '5') && std::isdigit(static_cast<unsigned char>(s[1])) &&
           std::isdigit(static_cast<unsigned char>(s[2])) && s[3] == ' ';
}

} // namespace amtp::opensmtpd::test
