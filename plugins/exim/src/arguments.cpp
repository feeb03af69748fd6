// The ${dlfunc} arguments as the entry points read them (dlfunc.cpp), without Exim's
// header: every string here came from an expansion, and several from the peer
// ($smtp_command, $message_headers_raw, $local_part, the certificate), so this layer
// is what tests/fuzz/fuzz_exim_args.cpp drives with arbitrary argument vectors.
#include "exim_module.hpp"

#include <openssl/evp.h>

#include <cstdlib>
#include <cstring>

namespace amtp::exim {

namespace {

const std::string& at(const Arguments& args, std::size_t i)
{
    static const std::string none;
    return i < args.size() ? args[i] : none;
}

} // namespace

std::string base64_der(std::string_view b64)
{
    std::string clean;
    for (char ch : b64)
        if (ch != '\n' && ch != '\r' && ch != ' ')
            clean += ch;
    if (clean.empty() || clean.size() % 4 != 0)
        return {};
    std::string out(clean.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
    if (n < 0)
        return {};
    // EVP_DecodeBlock counts the padding as data bytes. More than two '=' is not
    // base64 (and would take more bytes off than were decoded).
    const std::size_t data_end = clean.find_last_not_of('=');
    if (data_end == std::string::npos || clean.size() - 1 - data_end > 2)
        return {};
    out.resize(static_cast<std::size_t>(n) - (clean.size() - 1 - data_end));
    return out;
}

std::optional<unsigned> certificate_depth(std::string_view text)
{
    if (text.empty() || text.size() >= 3 || text.find_first_not_of("0123456789") != std::string_view::npos)
        return std::nullopt;
    unsigned depth = 0;
    for (const char c : text)
        depth = depth * 10 + static_cast<unsigned>(c - '0');
    return depth;
}

unsigned number_argument(const std::string& text)
{
    return text.empty() ? 0u : static_cast<unsigned>(std::strtoul(text.c_str(), nullptr, 10));
}

EhloInput ehlo_input(const Arguments& args, std::time_t now)
{
    EhloInput in;
    in.command = at(args, 1);
    in.peer = IpAddress::parse(at(args, 2)).value_or(IpAddress{});
    in.local = IpAddress::parse(at(args, 3)).value_or(IpAddress{});
    in.local_port = number_argument(at(args, 4));
    in.tls_active = !at(args, 5).empty();
    in.leaf_der = base64_der(at(args, 6));
    in.now = now;
    return in;
}

DataInput data_input(const Arguments& args, std::time_t now)
{
    DataInput in;
    in.headers = at(args, 1);
    in.recipients = split_recipients(at(args, 2));
    in.sender = at(args, 3);
    in.tls_version = at(args, 4);
    // GnuTLS spells it "TLS1.3"; the trace fields use the usual "TLSv1.3".
    if (in.tls_version.rfind("TLS1", 0) == 0)
        in.tls_version.insert(3, "v");
    in.tls_cipher = at(args, 5);
    in.size = number_argument(at(args, 6));
    in.now = now;
    return in;
}

const std::string& trace_field(const Connection& c, std::string_view which)
{
    static const std::string none;
    return which == "received"                 ? c.received
           : which == "authentication-results" ? c.authentication_results
           : which == "mpc"                    ? c.mpc_field
           : which == "remove"                 ? c.remove_fields
                                               : none;
}

std::optional<std::string> route_local_part(std::string_view local_part)
{
    auto safe = safe_local_part(local_part);
    // The result is read as an Exim list: list separators and the characters that
    // make an item a negation, regex, named list or special item never pass.
    if (safe && (safe->find(':') != std::string::npos || std::strchr("!^+@", safe->front())))
        safe.reset();
    return safe;
}

} // namespace amtp::exim
