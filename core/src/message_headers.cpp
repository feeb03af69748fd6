// The header scan behind two propagation rules: a message that already carries an
// MPC field must not be delivered or relayed (draft s4.4.4), and the AMTP-MPC carrier
// field of profile B5 is read and removed.
//
// Leniency is chosen so that an ambiguity never lets an MPC field through: only a
// truly empty line ends the header (a line of blanks is an obsolete continuation,
// RFC 5322 s4.2), and a malformed line neither ends the header nor stops the scan.
#include "amtp/message_headers.hpp"

#include <cctype>

namespace amtp {

namespace {

bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

bool iequals(std::string_view a, std::string_view b)
{
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

std::string_view trim(std::string_view s)
{
    while (!s.empty() && is_wsp(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_wsp(s.back()))
        s.remove_suffix(1);
    return s;
}

struct Field {
    std::string_view name;
    std::string_view value;   // everything after the colon
};

// RFC 5322 field-name (printable ASCII except ":"), then the obsolete syntax's
// optional blanks before the colon (s4.5.3). nullopt for anything else.
std::optional<Field> parse_field(std::string_view line)
{
    std::size_t i = 0;
    while (i < line.size()) {
        const auto c = static_cast<unsigned char>(line[i]);
        if (c < 33 || c > 126 || c == ':')
            break;
        ++i;
    }
    if (i == 0)
        return std::nullopt;
    const std::string_view name = line.substr(0, i);
    while (i < line.size() && is_wsp(line[i]))
        ++i;
    if (i == line.size() || line[i] != ':')
        return std::nullopt;
    return Field{name, line.substr(i + 1)};
}

} // namespace

bool HeaderScanner::line(std::string_view raw)
{
    if (!in_header_)
        return true;
    std::string_view text = raw;
    if (!text.empty() && text.back() == '\r')
        text.remove_suffix(1);

    if (text.empty()) {
        in_header_ = false;
        in_carrier_ = false;
        return true;
    }

    if (is_wsp(text.front())) {
        // A continuation belongs to the field before it; one at the very start has no
        // field and is simply kept.
        if (!in_carrier_)
            return true;
        // Unfolding removes only the line break (RFC 5322 s2.2.3): the blanks stay.
        carrier_raw_ += text;
        carrier_values_.back() = std::string(trim(carrier_raw_));
        return false;
    }

    in_carrier_ = false;
    const auto field = parse_field(text);
    if (!field)
        return true;   // malformed: kept, and the header goes on
    if (iequals(field->name, "MPC")) {
        ++mpc_fields_;
        return true;
    }
    if (iequals(field->name, "AMTP-MPC")) {
        in_carrier_ = true;
        carrier_raw_ = std::string(field->value);
        carrier_values_.emplace_back(trim(carrier_raw_));
        return false;
    }
    return true;
}

} // namespace amtp
