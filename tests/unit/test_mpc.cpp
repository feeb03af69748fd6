// MPC values, patterns and declarations (draft s4.4.2, s4.5; profile B9).
#include "amtp/mpc.hpp"

#include <catch2/catch.hpp>

#include <cctype>
#include <random>
#include <string>
#include <vector>

using namespace amtp;

namespace {

const std::vector<std::string> all_roles{"per", "com", "ngo", "net", "gov", "pol", "mpc"};
const std::vector<std::string> all_classes{"individual", "autoresponse", "customer", "optout", "optin", "confirmed"};

// Every value the draft defines: each role with each class, except mpc (individual only).
std::vector<MpcValue> all_values()
{
    std::vector<MpcValue> values;
    for (const auto& r : all_roles)
        for (const auto& c : all_classes)
            if (r != "mpc" || c == "individual")
                values.push_back({r, c});
    return values;
}

MpcValue value(const std::string& text)
{
    const auto parsed = parse_mpc(text);
    REQUIRE(parsed.value);
    return *parsed.value;
}

Declaration decl(bool allow, const std::string& pattern)
{
    const auto p = MpcPattern::parse(pattern);
    REQUIRE(p);
    return {allow, *p};
}

DeclarationList list(std::initializer_list<std::pair<bool, const char*>> items)
{
    std::vector<Declaration> out;
    for (const auto& [allow, pattern] : items)
        out.push_back(decl(allow, pattern));
    return DeclarationList(out);
}

constexpr bool ALLOW = true;
constexpr bool DENY = false;

} // namespace

TEST_CASE("Every defined role/class combination parses, mpc only as mpc/individual")
{
    for (const auto& r : all_roles)
        for (const auto& c : all_classes) {
            const auto parsed = parse_mpc(r + "/" + c);
            if (r == "mpc" && c != "individual") {
                CHECK_FALSE(parsed.value);
                CHECK(parsed.reason == Reason::mpc_undefined);
            } else {
                REQUIRE(parsed.value);
                CHECK(parsed.reason == Reason::none);
                CHECK(parsed.value->role == r);
                CHECK(parsed.value->cls == c);
                CHECK(parsed.value->str() == r + "/" + c);
            }
        }
}

TEST_CASE("MPC values are case-insensitive and come out in lower case")
{
    for (const char* text : {"PER/INDIVIDUAL", "Per/Individual", "pEr/iNdIvIdUaL"}) {
        const auto parsed = parse_mpc(text);
        REQUIRE(parsed.value);
        CHECK(parsed.value->str() == "per/individual");
    }
    CHECK(parse_mpc("MPC/Individual").value == MpcValue{"mpc", "individual"});
    CHECK(is_defined_role("COM"));
    CHECK(is_defined_class("OptIn"));
    CHECK_FALSE(is_defined_role("*"));
    CHECK_FALSE(is_defined_class(""));
}

TEST_CASE("Nasty MPC values are refused with the right reason")
{
    struct Case {
        std::string text;
        Reason reason;
    };
    const std::vector<Case> cases{
        {"", Reason::mpc_malformed},
        {"/", Reason::mpc_malformed},
        {"per", Reason::mpc_malformed},
        {"per/", Reason::mpc_malformed},
        {"/individual", Reason::mpc_malformed},
        {"perindividual", Reason::mpc_malformed},
        {"per//individual", Reason::mpc_malformed},
        {"per/individual/", Reason::mpc_malformed},
        {"per/individual/optin", Reason::mpc_malformed},
        {" per/individual", Reason::mpc_malformed},
        {"per/individual ", Reason::mpc_malformed},
        {"per /individual", Reason::mpc_malformed},
        {"per/ individual", Reason::mpc_malformed},
        {"per\t/individual", Reason::mpc_malformed},
        {"per/individual\r\n", Reason::mpc_malformed},
        {std::string("per/indi\0vidual", 15), Reason::mpc_malformed},
        {"per/individual\x7f", Reason::mpc_malformed},
        {"-per/individual", Reason::mpc_malformed},
        {"per/-individual", Reason::mpc_malformed},
        {"*/individual", Reason::mpc_malformed},
        {"per/*", Reason::mpc_malformed},
        {"*/*", Reason::mpc_malformed},
        {"p_r/individual", Reason::mpc_malformed},
        {"per.com/individual", Reason::mpc_malformed},
        {"per/individual;x", Reason::mpc_malformed},
        {"p\xc3\xa9r/individual", Reason::mpc_malformed},  // UTF-8 e-acute
        {"per/\xff", Reason::mpc_malformed},
        {"per\\individual", Reason::mpc_malformed},
        {"\"per\"/individual", Reason::mpc_malformed},
        {"per=individual", Reason::mpc_malformed},
        // Well-formed, but not defined by the draft.
        {"xyz/individual", Reason::mpc_undefined},
        {"per/bulk", Reason::mpc_undefined},
        {"per-/individual", Reason::mpc_undefined},      // a trailing hyphen is ABNF-valid
        {"per1/individual", Reason::mpc_undefined},
        {"123/456", Reason::mpc_undefined},
        {"pers/individual", Reason::mpc_undefined},
        {"pe/individual", Reason::mpc_undefined},
        {"per/individuals", Reason::mpc_undefined},
        {"per/opt-in", Reason::mpc_undefined},
        {"individual/per", Reason::mpc_undefined},
        {"mpc/optout", Reason::mpc_undefined},
        {"MPC/Autoresponse", Reason::mpc_undefined},
        {std::string(300, 'a') + "/individual", Reason::mpc_undefined},
    };
    for (const auto& c : cases) {
        INFO("value: " << c.text);
        const auto parsed = parse_mpc(c.text);
        CHECK_FALSE(parsed.value);
        CHECK(parsed.reason == c.reason);
        CHECK_FALSE(mpc_problem(c.text, false).empty());
    }
}

TEST_CASE("Configuration errors say why an MPC value is wrong")
{
    CHECK(mpc_problem("per/individual", false).empty());
    CHECK(mpc_problem("*/optout", true).empty());
    CHECK(mpc_problem("com", true) == "no \"/\" between role and class");
    CHECK(mpc_problem("com/opt-out", true).find("undefined class \"opt-out\"") != std::string::npos);
    CHECK(mpc_problem("cmo/*", true).find("undefined role \"cmo\"") != std::string::npos);
    CHECK(mpc_problem("mpc/optin", true) == "role \"mpc\" is defined only as mpc/individual");
    CHECK(mpc_problem("*/optout", false).find("pattern") != std::string::npos);
    // Control characters never reach a message raw.
    CHECK(mpc_problem("per/a\nb", false).find('\n') == std::string::npos);
}

TEST_CASE("mpc/individual is the one always-accepted value")
{
    for (const auto& v : all_values())
        CHECK(is_always_accepted(v) == (v.role == "mpc" && v.cls == "individual"));
    CHECK(is_always_accepted(MpcValue{"MPC", "Individual"}));
}

TEST_CASE("Patterns take defined names or * on either side")
{
    struct Case {
        const char* text;
        const char* parsed;  // nullptr: refused
    };
    const std::vector<Case> cases{
        {"*/*", "*/*"},
        {"com/*", "com/*"},
        {"*/optout", "*/optout"},
        {"COM/OptOut", "com/optout"},
        {"mpc/*", "mpc/*"},
        {"mpc/individual", "mpc/individual"},
        {"mpc/optout", nullptr},
        {"**/*", nullptr},
        {"*/", nullptr},
        {"/*", nullptr},
        {"*", nullptr},
        {"*/*/*", nullptr},
        {"c*m/*", nullptr},
        {"xyz/*", nullptr},
        {"*/bulk", nullptr},
        {" */*", nullptr},
        {"", nullptr},
    };
    for (const auto& c : cases) {
        INFO("pattern: " << c.text);
        const auto p = MpcPattern::parse(c.text);
        if (c.parsed) {
            REQUIRE(p);
            CHECK(p->str() == c.parsed);
        } else {
            CHECK_FALSE(p);
        }
    }
}

TEST_CASE("A pattern matches each side by name or by a wildcard")
{
    const auto com_any = *MpcPattern::parse("com/*");
    const auto any_optout = *MpcPattern::parse("*/optout");
    const auto any = *MpcPattern::parse("*/*");
    for (const auto& v : all_values()) {
        CHECK(com_any.matches(v) == (v.role == "com"));
        CHECK(any_optout.matches(v) == (v.cls == "optout"));
        CHECK(any.matches(v));
    }
    // A value built by hand in another case still matches.
    CHECK(com_any.matches(MpcValue{"COM", "optin"}));
}

TEST_CASE("An empty declaration list allows everything")
{
    const DeclarationList empty;
    CHECK(empty.empty());
    for (const auto& v : all_values())
        CHECK(empty.allows(v));
}

TEST_CASE("A leading DENY implies ALLOW */* before it")
{
    const auto rules = list({{DENY, "*/optout"}});
    for (const auto& v : all_values())
        CHECK(rules.allows(v) == (v.cls != "optout"));
}

TEST_CASE("A leading ALLOW implies DENY */* before it")
{
    const auto rules = list({{ALLOW, "*/individual"}});
    for (const auto& v : all_values())
        CHECK(rules.allows(v) == (v.cls == "individual"));
}

TEST_CASE("The last matching declaration decides")
{
    // Same patterns, opposite order, opposite outcome for com/optin.
    CHECK_FALSE(list({{ALLOW, "com/optin"}, {DENY, "com/*"}}).allows(value("com/optin")));
    CHECK(list({{DENY, "com/*"}, {ALLOW, "com/optin"}}).allows(value("com/optin")));
    // A later, broader ALLOW overrides an earlier narrow DENY.
    CHECK(list({{DENY, "com/optout"}, {ALLOW, "*/*"}}).allows(value("com/optout")));
    // A non-matching later declaration changes nothing.
    const auto rules = list({{DENY, "com/*"}, {ALLOW, "com/optin"}, {DENY, "gov/*"}});
    CHECK(rules.allows(value("com/optin")));
    CHECK_FALSE(rules.allows(value("com/optout")));
    CHECK_FALSE(rules.allows(value("gov/individual")));
    CHECK(rules.allows(value("per/optout")));
}

TEST_CASE("mpc/individual is accepted even when DENY */* is declared")
{
    const auto mpc = value("mpc/individual");
    CHECK(list({{DENY, "*/*"}}).allows(mpc));
    CHECK(list({{DENY, "mpc/*"}}).allows(mpc));
    CHECK(list({{DENY, "mpc/individual"}}).allows(mpc));
    CHECK(list({{ALLOW, "per/individual"}}).allows(mpc));
    CHECK(list({{ALLOW, "*/*"}, {DENY, "*/individual"}}).allows(mpc));
    CHECK_FALSE(list({{DENY, "*/*"}}).allows(value("per/individual")));
}

TEST_CASE("The draft's worked example allows only individual and confirmed commercial mail")
{
    const auto rules = list({{DENY, "com/*"}, {ALLOW, "com/individual"}, {ALLOW, "com/confirmed"}});
    // The oracle, stated as the draft states the outcome.
    auto oracle = [](const std::string& role, const std::string& cls) {
        if (role != "com")
            return true;
        return cls == "individual" || cls == "confirmed";
    };
    int checked = 0;
    for (const auto& v : all_values()) {
        INFO(v.str());
        CHECK(rules.allows(v) == oracle(v.role, v.cls));
        ++checked;
    }
    CHECK(checked == 6 * 6 + 1);
    CHECK(rules.ehlo_line() == "MPC DENY=com/* ALLOW=com/individual ALLOW=com/confirmed");
}

TEST_CASE("Declarations compare role and class case-insensitively")
{
    const auto rules = *DeclarationList::parse_ehlo_line("mpc deny=COM/* allow=Com/Confirmed");
    CHECK_FALSE(rules.allows(value("COM/OPTIN")));
    CHECK(rules.allows(value("cOm/cOnFiRmEd")));
    CHECK_FALSE(rules.allows(MpcValue{"COM", "OPTIN"}));
    CHECK(rules.allows(MpcValue{"Com", "Confirmed"}));
}

TEST_CASE("The EHLO line is emitted in the draft's ABNF form")
{
    CHECK(list({{ALLOW, "com/individual"}, {DENY, "*/optout"}}).ehlo_line() ==
          "MPC ALLOW=com/individual DENY=*/optout");
    CHECK(list({{DENY, "*/*"}}).ehlo_line() == "MPC DENY=*/*");
}

TEST_CASE("An empty declaration list sends no EHLO line")
{
    CHECK(DeclarationList().ehlo_line().empty());
}

TEST_CASE("A peer's line is read in the ABNF form")
{
    const auto rules = DeclarationList::parse_ehlo_line("MPC ALLOW=com/individual DENY=*/optout");
    REQUIRE(rules);
    REQUIRE(rules->items().size() == 2);
    CHECK(rules->items()[0].allow);
    CHECK(rules->items()[0].pattern.str() == "com/individual");
    CHECK_FALSE(rules->items()[1].allow);
    CHECK(rules->items()[1].pattern.str() == "*/optout");
}

TEST_CASE("A peer's line is read in the examples' keyword-space-value form")
{
    const auto rules = DeclarationList::parse_ehlo_line("MPC DENY com/* ALLOW com/individual");
    REQUIRE(rules);
    CHECK(rules->ehlo_line() == "MPC DENY=com/* ALLOW=com/individual");
}

TEST_CASE("A peer's line is read in the examples' MPC-ALLOW / MPC-DENY form")
{
    auto rules = DeclarationList::parse_ehlo_line("MPC-ALLOW */individual");
    REQUIRE(rules);
    CHECK(rules->ehlo_line() == "MPC ALLOW=*/individual");
    rules = DeclarationList::parse_ehlo_line("MPC-DENY=com/*");
    REQUIRE(rules);
    CHECK(rules->ehlo_line() == "MPC DENY=com/*");
    rules = DeclarationList::parse_ehlo_line("MPC-DENY com/* MPC-ALLOW=com/confirmed");
    REQUIRE(rules);
    CHECK(rules->ehlo_line() == "MPC DENY=com/* ALLOW=com/confirmed");
}

TEST_CASE("A peer's line may omit the MPC keyword, mix forms, vary case and spacing")
{
    const char* expected = "MPC DENY=com/* ALLOW=com/individual ALLOW=com/confirmed";
    for (const char* line : {
             "DENY=com/* ALLOW=com/individual ALLOW=com/confirmed",
             "mpc deny=com/* allow=com/individual allow=com/confirmed",
             "Mpc Deny com/* Allow=com/individual MPC-ALLOW com/confirmed",
             "  MPC   DENY=com/*\tALLOW = com/individual  ALLOW= com/confirmed  ",
             "MPC DENY =com/* ALLOW=COM/INDIVIDUAL ALLOW=Com/Confirmed\r\n",
         }) {
        INFO("line: " << line);
        const auto rules = DeclarationList::parse_ehlo_line(line);
        REQUIRE(rules);
        CHECK(rules->ehlo_line() == expected);
    }
}

TEST_CASE("Malformed EHLO lines are not read as declarations")
{
    for (const std::string line : {
             "",
             "   ",
             "MPC",
             "MPC ",
             "PIPELINING",
             "SIZE 10000000",
             "MPCALLOW=com/*",
             "MPC ALLOW",
             "MPC ALLOW=",
             "MPC ALLOW com/* DENY",
             "MPC PERMIT=com/*",
             "MPC ALLOW=com/* junk",
             "MPC ALLOW=com/* com/optin",
             "MPC ALLOW==com/*",
             "MPC ALLOW=com",
             "MPC ALLOW=com/*/x",
             "MPC ALLOW=com/*,DENY=*/optout",
             "MPC ALLOW=com/*;DENY=*/optout",
             "MPC=ALLOW com/*",
             "MPC MPC ALLOW=com/*",
             "MPC ALLOW=-com/*",
             "MPC ALLOW=c\x01m/*",
             "MPC ALLOW=com/*\rDENY=*/*",
             "MPC ALLOW=com/*\nDENY=*/*",
             "MPC ALLOW=co\xc3\xa9/*",
             "MPC DENY=*/optout ALLOW",
         }) {
        INFO("line: " << line);
        CHECK_FALSE(DeclarationList::parse_ehlo_line(line));
    }
}

TEST_CASE("An undefined name in a peer's line makes the whole line unusable")
{
    CHECK_FALSE(DeclarationList::parse_ehlo_line("MPC DENY=com/* ALLOW=com/bulk"));
    CHECK_FALSE(DeclarationList::parse_ehlo_line("MPC DENY=xyz/*"));
    CHECK_FALSE(DeclarationList::parse_ehlo_line("MPC DENY=mpc/optout"));
    CHECK(DeclarationList::parse_ehlo_line("MPC DENY=mpc/*"));
}

TEST_CASE("The emitted EHLO line round-trips through the parser")
{
    const auto rules = list({{DENY, "*/*"}, {ALLOW, "per/*"}, {ALLOW, "*/individual"}, {DENY, "com/optout"},
                             {ALLOW, "mpc/individual"}});
    const auto back = DeclarationList::parse_ehlo_line(rules.ehlo_line());
    REQUIRE(back);
    CHECK(back->ehlo_line() == rules.ehlo_line());
    for (const auto& v : all_values())
        CHECK(back->allows(v) == rules.allows(v));
}

TEST_CASE("For random declaration lists, allows equals a reference evaluation")
{
    // Reference: scan from the end for the last matching declaration; with none, the
    // implied first declaration decides (the opposite of the first real one; allow for
    // an empty list); mpc/individual is allowed whatever the list says.
    auto reference = [](const std::vector<std::pair<bool, std::pair<std::string, std::string>>>& items,
                        const MpcValue& v) {
        if (v.role == "mpc" && v.cls == "individual")
            return true;
        for (auto it = items.rbegin(); it != items.rend(); ++it) {
            const auto& [allow, pattern] = *it;
            const bool role_ok = pattern.first == "*" || pattern.first == v.role;
            const bool cls_ok = pattern.second == "*" || pattern.second == v.cls;
            if (role_ok && cls_ok)
                return allow;
        }
        return items.empty() || !items.front().first;
    };

    std::mt19937 rng(20040401);  // fixed seed: a failure is reproducible
    auto pick = [&](const std::vector<std::string>& from) {
        // About one time in four, a wildcard.
        if (std::uniform_int_distribution<int>(0, 3)(rng) == 0)
            return std::string("*");
        return from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(rng)];
    };
    auto random_case = [&](std::string s) {
        for (auto& c : s)
            if (std::uniform_int_distribution<int>(0, 1)(rng))
                c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        return s;
    };

    for (int round = 0; round < 2000; ++round) {
        const auto size = std::uniform_int_distribution<std::size_t>(0, 8)(rng);
        std::vector<std::pair<bool, std::pair<std::string, std::string>>> items;
        std::vector<Declaration> declarations;
        std::string line = "MPC";
        while (items.size() < size) {
            const bool allow = std::uniform_int_distribution<int>(0, 1)(rng);
            auto role = pick(all_roles);
            auto cls = pick(all_classes);
            if (role == "mpc" && cls != "*" && cls != "individual")
                continue;  // not a definable pattern
            items.push_back({allow, {role, cls}});
            declarations.push_back(decl(allow, random_case(role + "/" + cls)));
            line += std::string(allow ? " allow=" : " Deny ") + random_case(role + "/" + cls);
        }
        const DeclarationList rules(declarations);
        const auto parsed = DeclarationList::parse_ehlo_line(line);
        if (items.empty()) {
            CHECK_FALSE(parsed);  // "MPC" alone is not a declaration line
        } else {
            REQUIRE(parsed);
            CHECK(parsed->ehlo_line() == rules.ehlo_line());
        }
        for (const auto& v : all_values()) {
            const bool expected = reference(items, v);
            INFO("rules: " << rules.ehlo_line() << " value: " << v.str());
            CHECK(rules.allows(v) == expected);
            if (parsed)
                CHECK(parsed->allows(v) == expected);
        }
    }
}
