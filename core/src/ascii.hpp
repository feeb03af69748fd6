// ASCII case folding for protocol text (names, keywords, addresses' domains): never the
// locale's, which could fold differently. Internal to the core.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

namespace amtp::ascii {

inline char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string lower(std::string_view s)
{
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) { return lower(c); });
    return out;
}

inline bool iequals(std::string_view a, std::string_view b)
{
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

} // namespace amtp::ascii
