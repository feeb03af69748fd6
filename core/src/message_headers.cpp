// The header scan behind two propagation rules: a message that already carries an
// MPC field must not be delivered or relayed (draft s4.4.4), and the AMTP-MPC carrier
// field of profile B5 is read and removed. It also removes Authentication-Results
// fields that claim our authserv-id (RFC 8601 s5), so that a filter trusting our id
// sees only the field we write.
//
// Leniency is chosen so that an ambiguity never lets an MPC field through: only a
// truly empty line ends the header (a line of blanks is an obsolete continuation,
// RFC 5322 s4.2), and a malformed line neither ends the header nor stops the scan.
#include "amtp/message_headers.hpp"

#include "ascii.hpp"
#include <cctype>
#include <utility>

namespace amtp {

namespace {

using ascii::iequals;

bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
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

enum class IdScan { incomplete, found, absent };

// RFC 2045 token character (RFC 8601's `value` is a token or a quoted-string).
bool is_token_char(char ch)
{
    const auto c = static_cast<unsigned char>(ch);
    static constexpr std::string_view tspecials = "()<>@,;:\\\"/[]?=";
    return c > 0x20 && c < 0x7f && tspecials.find(ch) == std::string_view::npos;
}

// The authserv-id at the start of an unfolded Authentication-Results value: optional
// CFWS (blanks and nested comments), then a token or a quoted-string. A folded field
// breaks only at blanks, so a token that reaches the end of the text so far is whole;
// an open comment or quoted-string needs the next line.
IdScan leading_authserv_id(std::string_view v, std::string& id)
{
    std::size_t i = 0;
    for (;;) {
        while (i < v.size() && is_wsp(v[i]))
            ++i;
        if (i == v.size() || v[i] != '(')
            break;
        unsigned depth = 0;
        for (; i < v.size(); ++i) {
            if (v[i] == '\\') {
                ++i;
            } else if (v[i] == '(') {
                ++depth;
            } else if (v[i] == ')' && --depth == 0) {
                ++i;
                break;
            }
        }
        if (depth > 0)
            return IdScan::incomplete;
    }
    if (i >= v.size())
        return IdScan::incomplete;
    id.clear();
    if (v[i] == '"') {
        for (++i; i < v.size(); ++i) {
            if (v[i] == '\\') {
                if (++i == v.size())
                    return IdScan::incomplete;
                id += v[i];
            } else if (v[i] == '"') {
                return IdScan::found;
            } else {
                id += v[i];
            }
        }
        return IdScan::incomplete;
    }
    const std::size_t start = i;
    while (i < v.size() && is_token_char(v[i]))
        ++i;
    if (i == start)
        return IdScan::absent;
    id = std::string(v.substr(start, i - start));
    return IdScan::found;
}

bool contains_ignoring_case(std::string_view text, std::string_view part)
{
    if (part.empty() || part.size() > text.size())
        return false;
    for (std::size_t i = 0; i + part.size() <= text.size(); ++i)
        if (iequals(text.substr(i, part.size()), part))
            return true;
    return false;
}

std::string_view without_root_dot(std::string_view name)
{
    if (!name.empty() && name.back() == '.')
        name.remove_suffix(1);
    return name;
}

// A field whose authserv-id is still unknown after this much text is dropped as if it
// were ours: nothing legitimate hides its id that deep, and the hold stays bounded.
constexpr std::size_t max_undecided = 4096;

} // namespace

HeaderScanner::HeaderScanner(std::string authserv_id) : authserv_id_(std::move(authserv_id)) {}

// Decides the held Authentication-Results field if its authserv-id is known by now
// (or, `complete`, if no more of it will come).
void HeaderScanner::settle_results(bool complete)
{
    std::string id;
    const IdScan scan = leading_authserv_id(results_raw_, id);
    bool ours = false;
    if (scan == IdScan::found) {
        ours = iequals(without_root_dot(id), without_root_dot(authserv_id_));
    } else if (scan == IdScan::incomplete) {
        if (!complete && results_raw_.size() <= max_undecided)
            return;   // still undecided
        // Past the bound, or a field that ended inside a comment or quoted-string: a
        // lenient reader might still find our id in it, so such a field that mentions
        // it goes (removing an Authentication-Results field is always allowed).
        ours = results_raw_.size() > max_undecided || contains_ignoring_case(results_raw_, authserv_id_);
    }
    if (ours) {
        ++forged_results_;
        field_ = Field::results_forged;
    } else {
        for (auto& l : held_)
            released_.push_back(std::move(l));
        field_ = Field::other;
    }
    held_.clear();
    results_raw_.clear();
}

void HeaderScanner::finish()
{
    if (field_ == Field::results_pending)
        settle_results(true);
    field_ = Field::other;
}

std::vector<std::string> HeaderScanner::take_released()
{
    return std::exchange(released_, {});
}

bool HeaderScanner::line(std::string_view raw)
{
    if (!in_header_)
        return true;
    std::string_view text = raw;
    if (!text.empty() && text.back() == '\r')
        text.remove_suffix(1);

    if (text.empty()) {
        finish();
        in_header_ = false;
        return true;
    }

    if (is_wsp(text.front())) {
        // A continuation belongs to the field before it; one at the very start has no
        // field and is simply kept.
        switch (field_) {
        case Field::other:
            return true;
        case Field::carrier:
            // Unfolding removes only the line break (RFC 5322 s2.2.3): the blanks stay.
            carrier_raw_ += text;
            carrier_values_.back() = std::string(trim(carrier_raw_));
            return false;
        case Field::results_forged:
            return false;
        case Field::results_pending:
            // Held before the decision: released with the others if the field is not ours.
            results_raw_ += text;
            return hold_results_line(raw);
        }
        return true;
    }

    finish();
    const auto field = parse_field(text);
    if (!field)
        return true;   // malformed: kept, and the header goes on
    if (iequals(field->name, "MPC")) {
        ++mpc_fields_;
        return true;
    }
    if (iequals(field->name, "AMTP-MPC")) {
        field_ = Field::carrier;
        carrier_raw_ = std::string(field->value);
        carrier_values_.emplace_back(trim(carrier_raw_));
        return false;
    }
    if (!authserv_id_.empty() && iequals(field->name, "Authentication-Results")) {
        field_ = Field::results_pending;
        results_raw_ = std::string(field->value);
        return hold_results_line(raw);
    }
    return true;
}

// A line of an Authentication-Results field whose authserv-id is not known yet: held
// until it is. Returns whether the line is kept where it stands (the field turned out
// not to be ours, so this line is among the released ones, in its place).
bool HeaderScanner::hold_results_line(std::string_view raw)
{
    held_.emplace_back(raw);
    settle_results(false);
    if (field_ != Field::other)
        return false;
    released_.pop_back();
    return true;
}

std::vector<bool> HeaderScanner::scan(const std::vector<std::string_view>& lines)
{
    std::vector<bool> keep;
    keep.reserve(lines.size());
    // Held lines come back (kept after all) just before the line that settled them:
    // they are the last lines marked dropped so far.
    const auto mark_released = [&] {
        std::size_t n = take_released().size();
        for (std::size_t i = keep.size(); n > 0 && i-- > 0;)
            if (!keep[i]) {
                keep[i] = true;
                --n;
            }
    };
    for (const auto line : lines) {
        const bool kept = this->line(line);
        mark_released();
        keep.push_back(kept);
    }
    finish();
    mark_released();
    return keep;
}

std::vector<std::string_view> header_lines(std::string_view text)
{
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        const auto lf = text.find('\n');
        lines.push_back(text.substr(0, lf));
        text.remove_prefix(lf == std::string_view::npos ? text.size() : lf + 1);
    }
    return lines;
}

} // namespace amtp
