// The header scanner and the AMTP-MPC carrier field (draft s4.4.4, profile B5).
//
// Input: a message; each line (split at LF, its CR kept as a host may hand it over) is
// fed to one HeaderScanner.
//
// Invariants (checked against a direct reading of each line): once the header has
// ended every line is kept; an empty line (or a lone CR) ends the header; a field named
// MPC (any case, blanks allowed before the colon) is always seen; a field named
// AMTP-MPC is always removed and adds one carrier value, and so does nothing else;
// a continuation line is removed exactly when it continues an AMTP-MPC field; carrier
// values are trimmed and each value is then read with parse_mpc as the session does.
// A second scanner, given the authserv-id "mx.b.test", writes out what it keeps the way
// the session does (released held lines first): its output is the input in order with
// only AMTP-MPC and Authentication-Results field lines missing, nothing missing after
// the header, and an Authentication-Results field naming mx.b.test right after its
// colon always missing.
#include "fuzz_common.hpp"

#include "amtp/message_headers.hpp"
#include "amtp/mpc.hpp"

#include <cctype>
#include <string>
#include <vector>

using namespace amtp;

namespace {

// The field name when `line` starts a field "name [WSP] :", else empty.
std::string field_name(std::string_view line)
{
    std::size_t i = 0;
    while (i < line.size() && line[i] > 32 && line[i] < 127 && line[i] != ':')
        ++i;
    std::string name(line.substr(0, i));
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
        ++i;
    if (name.empty() || i == line.size() || line[i] != ':')
        return {};
    for (auto& c : name)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return name;
}

// Marks the last `n` lines not kept as kept (released held lines), then resets n.
void mark_released(std::vector<bool>& kept, std::size_t& n)
{
    for (std::size_t i = kept.size(); n > 0 && i-- > 0;)
        if (!kept[i]) {
            kept[i] = true;
            --n;
        }
    n = 0;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fuzz::Input in(data, size);
    HeaderScanner scanner;
    HeaderScanner writer("mx.b.test");
    std::vector<std::string_view> input;          // every line
    std::vector<std::string> output;              // what `writer` keeps, in order
    std::vector<bool> kept_flags;                 // per input line: in the output
    std::size_t released = 0;
    bool in_header = true;
    bool in_carrier = false;
    std::size_t carriers = 0;
    bool mpc_seen = false;
    while (!in.empty()) {
        const std::string_view raw = in.line();
        std::string_view text = raw;
        if (!text.empty() && text.back() == '\r')
            text.remove_suffix(1);
        const bool kept = scanner.line(raw);
        input.push_back(raw);
        const bool written = writer.line(raw);
        // Released lines are the latest held ones, i.e. the latest lines not kept.
        for (auto& held : writer.take_released()) {
            output.push_back(std::move(held));
            ++released;
        }
        mark_released(kept_flags, released);
        kept_flags.push_back(written);
        if (written)
            output.emplace_back(raw);
        if (!in_header) {
            FUZZ_CHECK(kept);
        } else if (text.empty()) {
            FUZZ_CHECK(kept);
            in_header = false;
        } else if (text.front() == ' ' || text.front() == '\t') {
            FUZZ_CHECK(kept == !in_carrier);
        } else {
            const std::string name = field_name(text);
            in_carrier = name == "amtp-mpc";
            mpc_seen = mpc_seen || name == "mpc";
            carriers += in_carrier ? 1 : 0;
            FUZZ_CHECK(kept == !in_carrier);
        }
        FUZZ_CHECK(scanner.in_header() == in_header);
        FUZZ_CHECK(scanner.has_mpc_field() == mpc_seen);
        FUZZ_CHECK(scanner.carrier_values().size() == carriers);
    }
    writer.finish();
    for (auto& held : writer.take_released()) {
        output.push_back(std::move(held));
        ++released;
    }
    mark_released(kept_flags, released);
    // The output is exactly the input lines flagged kept, in order; each line left out
    // is part of an AMTP-MPC or Authentication-Results field of the header, and a field
    // naming mx.b.test right after its colon is always left out.
    std::vector<std::string> expected;
    std::string field;
    bool header = true;
    unsigned results_fields = 0;
    for (std::size_t i = 0; i < input.size(); ++i) {
        std::string_view text = input[i];
        if (!text.empty() && text.back() == '\r')
            text.remove_suffix(1);
        const bool continuation = !text.empty() && (text.front() == ' ' || text.front() == '\t');
        const bool field_line = header && !text.empty() && !continuation;
        if (header && text.empty())
            header = false;
        else if (field_line)
            field = field_name(text);
        if (field_line && field == "authentication-results")
            ++results_fields;
        const std::string_view ours = "Authentication-Results: mx.b.test;";
        if (field_line && text.substr(0, ours.size()) == ours)
            FUZZ_CHECK(!kept_flags[i]);
        if (kept_flags[i]) {
            expected.emplace_back(input[i]);
            continue;
        }
        FUZZ_CHECK(header && !text.empty());
        FUZZ_CHECK(field == "amtp-mpc" || field == "authentication-results");
    }
    FUZZ_CHECK(output == expected);
    FUZZ_CHECK(writer.forged_results() <= results_fields);
    for (const auto& value : scanner.carrier_values()) {
        FUZZ_CHECK(value.empty() || (value.front() != ' ' && value.front() != '\t'));
        FUZZ_CHECK(value.empty() || (value.back() != ' ' && value.back() != '\t'));
        const auto parsed = parse_mpc(value);
        if (parsed.value)
            FUZZ_CHECK(!fuzz::has_control(parsed.value->str()));
    }
    return 0;
}
