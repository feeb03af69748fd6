// MPC values, patterns and the EHLO MPC line (draft s4.4.2-s4.5).
//
// Input: the text, whole, is given to each parser.
//
// Invariants: parse_mpc accepts exactly what mpc_problem finds no problem in; an
// accepted value is lower case, made of defined names, and its str() parses back
// equal; a pattern's str() parses back equal; a parsed EHLO line's ehlo_line() parses
// back to an equal list that writes the same line (round trip), and both lists decide
// every value the same way.
#include "fuzz_common.hpp"

#include "amtp/mpc.hpp"

#include <string>

using namespace amtp;

namespace {

bool same_list(const DeclarationList& a, const DeclarationList& b)
{
    if (a.items().size() != b.items().size())
        return false;
    for (std::size_t i = 0; i < a.items().size(); ++i) {
        const auto& x = a.items()[i];
        const auto& y = b.items()[i];
        if (x.allow != y.allow || x.pattern.role != y.pattern.role || x.pattern.cls != y.pattern.cls)
            return false;
    }
    return true;
}

const char* const roles[] = {"per", "com", "ngo", "net", "gov", "pol", "mpc"};
const char* const classes[] = {"individual", "autoresponse", "customer", "optout", "optin", "confirmed"};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    // A value.
    const auto value = parse_mpc(text);
    FUZZ_CHECK(value.value.has_value() == mpc_problem(text, false).empty());
    if (value.value) {
        FUZZ_CHECK(value.reason == Reason::none);
        FUZZ_CHECK(is_defined_role(value.value->role) && is_defined_class(value.value->cls));
        for (const char c : value.value->str())
            FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
        const auto again = parse_mpc(value.value->str());
        FUZZ_CHECK(again.value && *again.value == *value.value);
    } else {
        FUZZ_CHECK(value.reason == Reason::mpc_malformed || value.reason == Reason::mpc_undefined);
    }

    // A pattern.
    const auto pattern = MpcPattern::parse(text);
    FUZZ_CHECK(pattern.has_value() == mpc_problem(text, true).empty());
    if (pattern) {
        const auto again = MpcPattern::parse(pattern->str());
        FUZZ_CHECK(again && again->role == pattern->role && again->cls == pattern->cls);
    }

    // An EHLO line, and its round trip.
    const auto list = DeclarationList::parse_ehlo_line(text);
    if (list && !list->empty()) {
        const std::string line = list->ehlo_line();
        FUZZ_CHECK(!fuzz::has_control(line));
        const auto again = DeclarationList::parse_ehlo_line(line);
        FUZZ_CHECK(again.has_value());
        FUZZ_CHECK(same_list(*list, *again));
        FUZZ_CHECK(again->ehlo_line() == line);
        for (const char* role : roles)
            for (const char* cls : classes) {
                const MpcValue v{role, cls};
                FUZZ_CHECK(list->allows(v) == again->allows(v));
                if (is_always_accepted(v))
                    FUZZ_CHECK(list->allows(v));
            }
    }
    return 0;
}
