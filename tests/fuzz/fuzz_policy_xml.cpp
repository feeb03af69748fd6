// The policy XML loader (profile B6): Policy::load_string on arbitrary text.
//
// Input: the XML text.
//
// Invariants: the only exception is ConfigError (any other escapes and crashes the
// target); a loaded policy's lists write EHLO lines that parse back to the same line;
// domain and recipient keys are lower case; every sender value is a defined MPC value;
// every private network has a name, and each pin 64 lower-case hex digits.
#include "fuzz_common.hpp"

#include "amtp/errors.hpp"
#include "amtp/policy.hpp"

#include <string>

using namespace amtp;

namespace {

void check_list(const DeclarationList& list)
{
    if (list.empty())
        return;
    const std::string line = list.ehlo_line();
    FUZZ_CHECK(!fuzz::has_control(line));
    const auto again = DeclarationList::parse_ehlo_line(line);
    FUZZ_CHECK(again && again->ehlo_line() == line);
}

void check_key(const std::string& key)
{
    FUZZ_CHECK(!key.empty());
    for (const char c : key)
        FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view xml(reinterpret_cast<const char*>(data), size);
    Policy policy;
    try {
        policy = Policy::load_string(xml, "fuzz.xml");
    } catch (const ConfigError& e) {
        FUZZ_CHECK(e.what() != nullptr);
        return 0;
    }
    check_list(policy.advertise);
    for (const auto& [domain, list] : policy.domains) {
        check_key(domain);
        check_list(list);
    }
    for (const auto& [address, list] : policy.recipients) {
        check_key(address);
        check_list(list);
        const auto* rules = policy.rules_for(address);
        FUZZ_CHECK(rules == &list);
    }
    for (const auto& [address, value] : policy.senders) {
        FUZZ_CHECK(!address.empty());
        const auto parsed = parse_mpc(value.str());
        FUZZ_CHECK(parsed.value && *parsed.value == value);
        const auto bound = policy.sender_mpc(address);
        FUZZ_CHECK(bound && *bound == value);
    }
    for (const auto& network : policy.private_networks) {
        FUZZ_CHECK(!network.name.empty());
        for (const auto& pin : network.pins) {
            FUZZ_CHECK(pin.sha256.size() == 64);
            for (const char c : pin.sha256)
                FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
        }
    }
    return 0;
}
