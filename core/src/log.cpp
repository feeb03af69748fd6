#include "amtp/log.hpp"

namespace amtp {

std::string printable(std::string_view text)
{
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(text.size());
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c < 0x7f) {
            out += ch;
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
    return out;
}

LogLine::LogLine(std::string_view event) : line_("event=" + printable(event)) {}

LogLine& LogLine::kv(std::string_view key, std::string_view value)
{
    line_ += ' ';
    line_ += key;
    line_ += '=';
    const std::string v = printable(value);
    const bool quote = v.empty() || v.find_first_of(" \"=") != std::string::npos;
    if (!quote) {
        line_ += v;
        return *this;
    }
    line_ += '"';
    // printable() already wrote every other escape as \xHH; a quote gets the same form.
    for (const char c : v) {
        if (c == '"')
            line_ += "\\x22";
        else
            line_ += c;
    }
    line_ += '"';
    return *this;
}

LogLine& LogLine::kv(std::string_view key, long long value)
{
    return kv(key, std::to_string(value));
}

} // namespace amtp
