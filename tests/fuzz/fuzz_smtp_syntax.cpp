// SMTP command syntax: the verb, MAIL/RCPT paths and ESMTP parameters, mailboxes and
// the MPC= parameter (RFC 5321, draft s4.4.3).
//
// Input: one command line (as after the CRLF is removed), given to split_command;
// its argument to parse_path_command with FROM and TO; the text, whole, to
// parse_mailbox.
//
// Invariants: the verb is upper case with no space; parameter keywords are upper
// case; a mailbox's domain is normalised (a second parse of str() gives the same
// mailbox); mpc_parameter's reason agrees with its value (a value has no reason; no
// value when one is required has one).
#include "fuzz_common.hpp"

#include "amtp/names.hpp"
#include "amtp/smtp_syntax.hpp"

using namespace amtp;

namespace {

void check_mailbox(std::string_view text)
{
    const auto box = parse_mailbox(text);
    if (!box)
        return;
    FUZZ_CHECK(!box->local.empty());
    FUZZ_CHECK(!box->domain.empty());
    const auto norm = normalize_host_name(box->domain);
    FUZZ_CHECK(norm && *norm == box->domain);
    const auto again = parse_mailbox(box->str());
    FUZZ_CHECK(again && again->local == box->local && again->domain == box->domain);
}

void check_path(std::string_view argument, std::string_view keyword)
{
    const auto path = parse_path_command(argument, keyword);
    if (!path)
        return;
    for (const auto& p : path->parameters) {
        for (const char c : p.keyword)
            FUZZ_CHECK(!(c >= 'a' && c <= 'z'));
        FUZZ_CHECK(!p.keyword.empty());
        FUZZ_CHECK(p.has_value || p.value.empty());
    }
    if (!path->address.empty())
        check_mailbox(path->address);
    for (const bool required : {false, true}) {
        const auto mpc = mpc_parameter(path->parameters, required);
        if (mpc.value)
            FUZZ_CHECK(mpc.reason == Reason::none);
        else if (required)
            FUZZ_CHECK(mpc.reason != Reason::none);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    const auto command = split_command(text);
    for (const char c : command.verb) {
        FUZZ_CHECK(!(c >= 'a' && c <= 'z'));
        FUZZ_CHECK(c != ' ');
    }
    FUZZ_CHECK(command.argument.empty() || command.argument.front() != ' ');
    check_path(command.argument, "FROM");
    check_path(command.argument, "TO");
    check_path(text, "FROM");
    check_mailbox(text);
    return 0;
}
