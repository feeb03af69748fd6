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
#include "fuzz_common.hpp"

#include "amtp/message_headers.hpp"
#include "amtp/mpc.hpp"

#include <cctype>

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

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fuzz::Input in(data, size);
    HeaderScanner scanner;
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
    for (const auto& value : scanner.carrier_values()) {
        FUZZ_CHECK(value.empty() || (value.front() != ' ' && value.front() != '\t'));
        FUZZ_CHECK(value.empty() || (value.back() != ' ' && value.back() != '\t'));
        const auto parsed = parse_mpc(value);
        if (parsed.value)
            FUZZ_CHECK(!fuzz::has_control(parsed.value->str()));
    }
    return 0;
}
