// OpenSMTPD's filter protocol (smtpd-filters(7); 0.6 in smtpd 6.8, 0.7 in 7.4), as
// pure functions: one input line to one event, and every output line built here.
// smtpd exits as a whole on one malformed line from a filter, so nothing reaches
// stdout except through these builders, which never let a CR, LF or NUL through and
// only echo session ids and tokens that are plain hexadecimal.
#pragma once

#include "amtp/reply.hpp"

#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace amtp::opensmtpd {

// "config|<key>|<value>"; "config|ready" has key "ready" and no value.
struct ConfigEvent {
    std::string key;
    std::string value;
};

// "report|<version>|<timestamp>|<subsystem>|<event>|<session>|<rest>"
struct ReportEvent {
    std::string version;
    std::string subsystem;
    std::string event;
    std::string session;
    std::string rest;   // unsplit: protocol-client commands may hold '|'
};

// "filter|<version>|<timestamp>|<subsystem>|<phase>|<session>|<token>[|<param>]"
struct FilterEvent {
    std::string version;
    std::string subsystem;
    std::string phase;
    std::string session;
    std::string token;
    std::string param;  // unsplit (a data line may hold '|'); "" when absent
};

struct Malformed {
    std::string why;
};

using Event = std::variant<ConfigEvent, ReportEvent, FilterEvent, Malformed>;

// The line without its LF (a trailing CR is kept: it is part of a data line).
Event parse_event(std::string_view line);

// Versions this filter speaks: the fields it reads are the same in both.
bool supported_version(std::string_view version);

// Splits on '|' (for link-connect's fields).
std::vector<std::string_view> split_fields(std::string_view text);

// Output lines, each ending in LF. Session ids and tokens must satisfy
// is_safe_id (parse_event guarantees it for what it returns).
bool is_safe_id(std::string_view id);
std::string register_lines(const std::vector<std::string>& filter_phases, const std::vector<std::string>& reports);
std::string proceed(std::string_view session, std::string_view token);
std::string reject(std::string_view session, std::string_view token, const Reply& reply);
std::string disconnect(std::string_view session, std::string_view token, const Reply& reply);
std::string rewrite(std::string_view session, std::string_view token, std::string_view value);
std::string dataline(std::string_view session, std::string_view token, std::string_view line);

// "550 5.7.1 MPC policy violation": the first line of a reply as smtpd wants it after
// reject|/disconnect| (4xx or 5xx only; anything else becomes 451 4.3.0).
std::string reply_text(const Reply& reply);

// The final (or only) reply in a wire-form text such as ServerSession::take_output()
// gives ("250-a\r\n250 b\r\n"); the code, enhanced code and first line's text.
// code 0 when the text holds no complete reply.
Reply last_reply(std::string_view wire);

} // namespace amtp::opensmtpd
