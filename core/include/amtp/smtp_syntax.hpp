// RFC 5321 command syntax as AMTP reads it: the verb, the MAIL/RCPT path and its
// ESMTP parameters, and the MPC= parameter (draft s4.4.3). Pure functions, shared by
// the server session and the adapters that see raw command lines.
#pragma once

#include "amtp/mpc.hpp"
#include "amtp/reply.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace amtp {

struct Command {
    std::string verb;       // upper case, e.g. "MAIL"
    std::string argument;   // the rest, leading spaces removed
};

Command split_command(std::string_view line);

struct EsmtpParameter {
    std::string keyword;    // upper case
    std::string value;      // as given ("" when there was no '=')
    bool has_value = false;
};

struct PathCommand {
    std::string address;    // without the angle brackets; "" for the null path <>
    std::vector<EsmtpParameter> parameters;
};

// Parses "FROM:<a@b> K=V ..." (keyword "FROM") or "TO:<...>" (keyword "TO"). A space
// after the colon is tolerated. nullopt on a syntax error.
std::optional<PathCommand> parse_path_command(std::string_view argument, std::string_view keyword);

// local-part "@" domain, with a dot-atom or quoted-string local part and a host
// name domain; the domain is returned normalised.
struct Mailbox {
    std::string local;
    std::string domain;
    std::string str() const { return local + "@" + domain; }
};
std::optional<Mailbox> parse_mailbox(std::string_view address);

// The MPC= parameter: exactly one (draft s4.4.3). With `required` false a missing
// parameter is not an error (the header carrier of profile B5 may follow).
struct MpcParameter {
    std::optional<MpcValue> value;
    Reason reason = Reason::none;  // mpc_missing, mpc_duplicate, mpc_malformed, mpc_undefined
};
MpcParameter mpc_parameter(const std::vector<EsmtpParameter>& parameters, bool required);

} // namespace amtp
