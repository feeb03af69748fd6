// Mail Policy Codes (draft s4.4.2-s4.5, profile B9): values, patterns, the ordered
// ALLOW/DENY declarations and their one evaluation rule, used by server and client.
#pragma once

#include "amtp/reply.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace amtp {

struct MpcValue {
    std::string role;   // lower case: per com ngo net gov pol mpc
    std::string cls;    // lower case: individual autoresponse customer optout optin confirmed
    std::string str() const { return role + "/" + cls; }
    friend bool operator==(const MpcValue& a, const MpcValue& b) { return a.role == b.role && a.cls == b.cls; }
    friend bool operator!=(const MpcValue& a, const MpcValue& b) { return !(a == b); }
};

struct MpcParseResult {
    std::optional<MpcValue> value;
    Reason reason = Reason::none;   // mpc_malformed (not the ABNF) or mpc_undefined
};

// Strict: `role "/" class`, each (ALPHA/DIGIT) *(ALPHA/DIGIT/"-"), both defined by the
// draft; "mpc" only as "mpc/individual". Case-insensitive; the result is lower case.
MpcParseResult parse_mpc(std::string_view text);

bool is_defined_role(std::string_view role);
bool is_defined_class(std::string_view cls);

// Why `text` is not a valid MPC value (or, with `wildcards`, a valid pattern), in
// words for configuration errors, e.g. `undefined class "optinn"`; empty when valid.
std::string mpc_problem(std::string_view text, bool wildcards);

// The always-accepted value (draft s4.5): reports of MPC violations.
bool is_always_accepted(const MpcValue& value);

// A role/class pattern where either side may be "*".
struct MpcPattern {
    std::string role;
    std::string cls;
    bool matches(const MpcValue& value) const;
    std::string str() const { return role + "/" + cls; }
    static std::optional<MpcPattern> parse(std::string_view text);  // defined names or "*"
};

struct Declaration {
    bool allow = true;
    MpcPattern pattern;
};

class DeclarationList {
public:
    DeclarationList() = default;
    explicit DeclarationList(std::vector<Declaration> items) : items_(std::move(items)) {}

    const std::vector<Declaration>& items() const { return items_; }
    bool empty() const { return items_.empty(); }

    // The draft's evaluation as profile B9 fixes it: an implied first declaration
    // (DENY */* before a leading ALLOW, ALLOW */* before a leading DENY, ALLOW */* for
    // an empty list), then the declarations in order; the last one that matches
    // decides. mpc/individual is always allowed.
    bool allows(const MpcValue& value) const;

    // The EHLO keyword line in the draft's ABNF form, "MPC ALLOW=com/individual
    // DENY=*/optout"; empty string for an empty list (no line is sent).
    std::string ehlo_line() const;

    // Reads a peer's EHLO line (with or without the leading keyword): the ABNF form,
    // and the examples' forms "MPC DENY com/*" and "MPC-ALLOW */individual".
    // nullopt when the line is not an MPC line or is malformed, including a pattern
    // naming an undefined role or class (docs/POLICY.md, "Reading a peer's line").
    static std::optional<DeclarationList> parse_ehlo_line(std::string_view line);

private:
    std::vector<Declaration> items_;
};

} // namespace amtp
