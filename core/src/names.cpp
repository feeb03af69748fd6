// Host names as AMTP compares them (profile B2). Every comparison goes through
// normalize_host_name, so "MX.Example.ORG.", "mx.example.org" and an IDN written in
// U-labels all meet in one canonical form: lower-case A-labels without the root dot.
#include "amtp/names.hpp"

#include "ascii.hpp"
#include <idn2.h>

#include <memory>

namespace amtp {

namespace {


constexpr std::size_t max_name_length = 253;  // RFC 1035 s2.3.4, without the root dot
constexpr std::size_t max_label_length = 63;

// libidn2 is linked privately into this file alone, so its one deleter lives here
// rather than in the public handles.hpp (which would force idn2.h on every adapter).
struct Idn2Free {
    void operator()(char* p) const noexcept { idn2_free(p); }
};

bool is_ldh(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

// RFC 1123 host name syntax on an already lower-cased ASCII name.
bool valid_ldh_name(std::string_view name)
{
    if (name.empty() || name.size() > max_name_length)
        return false;
    std::size_t start = 0;
    while (true) {
        const std::size_t dot = name.find('.', start);
        const std::string_view label = name.substr(start, dot == std::string_view::npos ? name.npos : dot - start);
        if (label.empty() || label.size() > max_label_length)
            return false;
        if (label.front() == '-' || label.back() == '-')
            return false;
        for (char c : label)
            if (!is_ldh(c))
                return false;
        if (dot == std::string_view::npos)
            return true;
        start = dot + 1;
    }
}

} // namespace

std::optional<std::string> normalize_host_name(std::string_view name)
{
    // Refuse before libidn2 sees the text: it takes a C string (an embedded NUL would
    // silently cut the name short) and UTS #46 mapping could turn odd code points into
    // ASCII we never meant to accept. A '*' is refused too: a wildcard is not a host.
    bool ascii = true;
    for (char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f || c == '*')
            return std::nullopt;
        if (u >= 0x80)
            ascii = false;
    }
    if (!name.empty() && name.back() == '.')
        name.remove_suffix(1);  // one root dot only: "a.test.." stays invalid
    if (name.empty())
        return std::nullopt;

    // Lower-casing the ASCII bytes first is safe for UTF-8 (no multi-byte sequence
    // contains a byte below 0x80) and makes the ASCII path need no libidn2 at all.
    std::string lowered(name.size(), '\0');
    for (std::size_t i = 0; i < name.size(); ++i)
        lowered[i] = ascii::lower(name[i]);

    std::string result;
    if (ascii) {
        // Pure LDH names are compared byte-wise; "xn--" labels are taken as written,
        // exactly as DNS and certificates carry them.
        result = std::move(lowered);
    } else {
        char* converted = nullptr;
        const int rc = idn2_to_ascii_8z(lowered.c_str(), &converted, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
        const std::unique_ptr<char, Idn2Free> owned(converted);
        if (rc != IDN2_OK || !owned)
            return std::nullopt;  // not UTF-8, or code points IDNA2008 disallows
        result = owned.get();
        for (char& c : result)
            c = ascii::lower(c);
    }
    if (!valid_ldh_name(result))
        return std::nullopt;
    return result;
}

bool is_fully_qualified(std::string_view normalized_name)
{
    const std::size_t dot = normalized_name.rfind('.');
    if (dot == std::string_view::npos || dot == 0)
        return false;
    const std::string_view tld = normalized_name.substr(dot + 1);
    if (tld.empty())
        return false;
    // An all-numeric top-level label would make "192.0.2.1" look like a domain.
    for (char c : tld)
        if (c < '0' || c > '9')
            return true;
    return false;
}

bool client_name_matches(const std::vector<std::string>& certificate_names, std::string_view ehlo_name)
{
    const auto ehlo = normalize_host_name(ehlo_name);
    if (!ehlo)
        return false;
    for (const auto& presented : certificate_names) {
        // normalize_host_name refuses any '*', so a wildcard certificate name can
        // never equal a client's EHLO name (the PTR must name one host).
        const auto name = normalize_host_name(presented);
        if (name && *name == *ehlo)
            return true;
    }
    return false;
}

bool server_name_matches(const std::vector<std::string>& certificate_names, std::string_view expected_name)
{
    const auto expected = normalize_host_name(expected_name);
    if (!expected)
        return false;
    // The expected name split at its first label, for wildcard comparison.
    const std::size_t first_dot = expected->find('.');
    const std::string_view expected_parent =
        first_dot == std::string::npos ? std::string_view{} : std::string_view(*expected).substr(first_dot + 1);

    for (const auto& presented : certificate_names) {
        const std::string_view text = presented;
        if (text.size() > 2 && text.compare(0, 2, "*.") == 0) {
            // RFC 6125 s6.4.3: only a whole left-most label may be a wildcard, and it
            // stands for exactly one label. "*.a.test" covers "mx.a.test", never
            // "a.test" nor "x.mx.a.test". The parent needs two labels, so that
            // "*.test" cannot cover a whole top-level domain.
            const auto parent = normalize_host_name(text.substr(2));
            if (parent && parent->find('.') != std::string::npos && !expected_parent.empty() &&
                *parent == expected_parent)
                return true;
            continue;
        }
        const auto name = normalize_host_name(text);  // refuses "f*.a.test", "a.*.test"
        if (name && *name == *expected)
            return true;
    }
    return false;
}

} // namespace amtp
