// The option table and everything derived from it (profile B8; style: "one table
// declares every option"): the INI reader, --help, the effective-settings listing of
// --check-config, docs/CONFIGURATION.md and the amtp.ini(5) man page.
//
// Boost.Program_options reads the file. A line scanner of ours runs first, because
// Boost knows no line numbers (an operator needs "amtpd.ini:7"), treats ';' lines as
// syntax errors and reads "[ listen ]" as a section named " listen ". The scanner
// hands Boost the same lines, cleaned, so the two always agree on line numbers.
// Values are taken from Boost as text and converted by the codecs below, which know
// what an operator should be told about a bad value.
#include "amtp/settings.hpp"

#include "ascii.hpp"
#include "amtp/errors.hpp"
#include "amtp/names.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>

namespace amtp {

namespace {

using ascii::iequals;

namespace fs = std::filesystem;
namespace po = boost::program_options;
using std::chrono::milliseconds;
using std::chrono::seconds;

// ------------------------------------------------------------------ text helpers

// The blanks Boost trims around keys and values; the scanner must trim the same.
constexpr const char* blanks = " \t\r\n";

std::string_view trim(std::string_view s)
{
    const auto first = s.find_first_not_of(blanks);
    if (first == std::string_view::npos)
        return {};
    return s.substr(first, s.find_last_not_of(blanks) - first + 1);
}

bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

// A value as an operator should see it in a message: quoted, with control characters
// escaped (a stray CR or NUL must be visible) and cut short if it is a whole paragraph.
std::string quote(std::string_view value)
{
    constexpr std::size_t limit = 80;
    std::string out = "\"";
    for (std::size_t i = 0; i < value.size() && i < limit; ++i) {
        const auto c = static_cast<unsigned char>(value[i]);
        if (c < 0x20 || c == 0x7f) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xf];
        } else {
            if (c == '"' || c == '\\')
                out += '\\';
            out += static_cast<char>(c);
        }
    }
    if (value.size() > limit)
        out += "...";
    return out + "\"";
}

// Edit distance, for "did you mean" on a mistyped key (keys are short).
std::size_t distance(std::string_view a, std::string_view b)
{
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            const bool same = ascii::lower(a[i - 1]) == ascii::lower(b[j - 1]);
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
            diagonal = up;
        }
    }
    return row[b.size()];
}

// "listen.public" -> {"listen", "public"}; "hostname" -> {"", "hostname"}.
std::pair<std::string_view, std::string_view> split_name(std::string_view name)
{
    const auto dot = name.find('.');
    if (dot == std::string_view::npos)
        return {{}, name};
    return {name.substr(0, dot), name.substr(dot + 1)};
}

// ------------------------------------------------------------------ one value

// One value and where it came from: enough to resolve a relative path and to blame
// the right line.
struct Input {
    std::string_view value;
    const std::string& file;
    unsigned line;
    const std::string& key;
    const fs::path& base_dir;

    [[noreturn]] void fail(const std::string& message) const { throw ConfigError(file, line, key, message); }
};

// How one type is read and written back. `hint` ends every message about a bad value,
// so the operator always learns what to write instead.
template <class T>
struct Codec {
    const char* type;
    std::string hint;
    std::string range;    // for the documentation, when the type's range is not obvious
    bool empty_ok;        // an empty value means "none" (only for text types)
    std::function<T(const Input&)> parse;
    std::function<std::string(const T&)> format;
};

// ------------------------------------------------------------------ numbers

enum class Status { ok, malformed, out_of_range };

struct Unit {
    const char* suffix;   // matched without regard to case; "" for a bare number
    std::uint64_t factor;
};

// "25M" -> 25 * factor of "M". All our quantities are positive: a leading '-' on an
// otherwise well-formed number makes it out of range rather than malformed, which is
// the more useful message.
std::pair<Status, std::uint64_t> scan_quantity(std::string_view text, const std::vector<Unit>& units)
{
    const bool negative = !text.empty() && text.front() == '-';
    if (negative)
        text.remove_prefix(1);
    std::size_t digits = 0;
    while (digits < text.size() && is_digit(text[digits]))
        ++digits;
    if (digits == 0)
        return {Status::malformed, 0};
    const auto suffix = text.substr(digits);
    const auto unit = std::find_if(units.begin(), units.end(), [&](const Unit& u) { return iequals(suffix, u.suffix); });
    if (unit == units.end())
        return {Status::malformed, 0};

    constexpr auto max = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t value = 0;
    for (char c : text.substr(0, digits)) {
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (value > (max - digit) / 10)
            return {Status::out_of_range, 0};
        value = value * 10 + digit;
    }
    if (negative || value > max / unit->factor)
        return {Status::out_of_range, 0};
    return {Status::ok, value * unit->factor};
}

// Writes a quantity with the largest unit that divides it exactly ("25M", "1h").
std::string format_quantity(std::uint64_t value, const std::vector<Unit>& units_largest_first)
{
    for (const auto& unit : units_largest_first)
        if (value != 0 && value % unit.factor == 0)
            return std::to_string(value / unit.factor) + unit.suffix;
    return std::to_string(value);
}

const std::vector<Unit> size_units{{"", 1}, {"K", 1ull << 10}, {"M", 1ull << 20}, {"G", 1ull << 30}};
const std::vector<Unit> size_units_out{{"G", 1ull << 30}, {"M", 1ull << 20}, {"K", 1ull << 10}, {"", 1}};

// Durations are scanned in milliseconds; a bare number is seconds.
const std::vector<Unit> duration_units{{"", 1000}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
const std::vector<Unit> duration_units_ms{{"ms", 1},      {"", 1000},         {"s", 1000},
                                          {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
const std::vector<Unit> duration_units_out{{"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}, {"ms", 1}};

std::string format_ms(std::uint64_t ms)
{
    return ms == 0 ? "0s" : format_quantity(ms, duration_units_out);
}

Codec<unsigned> count(unsigned min, unsigned max)
{
    const std::string range = std::to_string(min) + " to " + std::to_string(max);
    const std::string hint = "use a whole number from " + range;
    return {"count", hint, range, false,
            [=](const Input& in) {
                const auto [status, value] = scan_quantity(in.value, {{"", 1}});
                if (status == Status::malformed)
                    in.fail(quote(in.value) + " is not a whole number (" + hint + ")");
                if (status == Status::out_of_range || value < min || value > max)
                    in.fail(quote(in.value) + " is out of range (" + hint + ")");
                return static_cast<unsigned>(value);
            },
            [](const unsigned& v) { return std::to_string(v); }};
}

Codec<std::uint16_t> port()
{
    const std::string hint = "use a whole number from 1 to 65535";
    return {"port", hint, "", false,
            [=](const Input& in) {
                const auto [status, value] = scan_quantity(in.value, {{"", 1}});
                if (status == Status::malformed)
                    in.fail(quote(in.value) + " is not a port number (" + hint + ")");
                if (status == Status::out_of_range || value < 1 || value > 65535)
                    in.fail(quote(in.value) + " is out of range (" + hint + ")");
                return static_cast<std::uint16_t>(value);
            },
            [](const std::uint16_t& v) { return std::to_string(v); }};
}

Codec<std::uint64_t> size(std::uint64_t min, std::uint64_t max)
{
    const std::string range = format_quantity(min, size_units_out) + " to " + format_quantity(max, size_units_out);
    return {"size", "use a number with K, M or G", range, false,
            [=](const Input& in) {
                const auto [status, value] = scan_quantity(in.value, size_units);
                if (status == Status::malformed)
                    in.fail(quote(in.value) + " is not a size (use a number with K, M or G)");
                if (status == Status::out_of_range || value < min || value > max)
                    in.fail(quote(in.value) + " is out of range (use a size from " + range + ")");
                return value;
            },
            [](const std::uint64_t& v) { return format_quantity(v, size_units_out); }};
}

// Scans one duration in milliseconds and checks its range; messages name `what`, the
// whole value or one item of a list.
std::uint64_t duration_ms(const Input& in, std::string_view text, const std::string& what, bool with_ms,
                          std::uint64_t min_ms, std::uint64_t max_ms)
{
    const auto [status, value] = scan_quantity(text, with_ms ? duration_units_ms : duration_units);
    if (status == Status::malformed)
        in.fail(what + " is not a duration (use a number with " + (with_ms ? "ms, " : "") + "s, m, h or d)");
    if (status == Status::out_of_range || value < min_ms || value > max_ms)
        in.fail(what + " is out of range (use a duration from " + format_ms(min_ms) + " to " + format_ms(max_ms) +
                ")");
    return value;
}

Codec<seconds> duration(seconds min, seconds max)
{
    const auto min_ms = static_cast<std::uint64_t>(min.count()) * 1000;
    const auto max_ms = static_cast<std::uint64_t>(max.count()) * 1000;
    return {"duration", "use a number with s, m, h or d", format_ms(min_ms) + " to " + format_ms(max_ms), false,
            [=](const Input& in) {
                const auto ms = duration_ms(in, in.value, quote(in.value), false, min_ms, max_ms);
                return seconds(static_cast<seconds::rep>(ms / 1000));
            },
            [](const seconds& v) { return format_ms(static_cast<std::uint64_t>(v.count()) * 1000); }};
}

Codec<milliseconds> duration_with_ms(milliseconds min, milliseconds max)
{
    const auto min_ms = static_cast<std::uint64_t>(min.count());
    const auto max_ms = static_cast<std::uint64_t>(max.count());
    return {"duration", "use a number with ms, s, m, h or d", format_ms(min_ms) + " to " + format_ms(max_ms), false,
            [=](const Input& in) {
                return milliseconds(static_cast<milliseconds::rep>(duration_ms(in, in.value, quote(in.value), true,
                                                                               min_ms, max_ms)));
            },
            [](const milliseconds& v) { return format_ms(static_cast<std::uint64_t>(v.count())); }};
}

Codec<std::vector<seconds>> durations(seconds min, seconds max)
{
    const auto min_ms = static_cast<std::uint64_t>(min.count()) * 1000;
    const auto max_ms = static_cast<std::uint64_t>(max.count()) * 1000;
    const std::string hint = "use durations separated by commas, e.g. 5m,15m,1h";
    return {"durations", hint, "each " + format_ms(min_ms) + " to " + format_ms(max_ms), false,
            [=](const Input& in) {
                std::vector<seconds> out;
                std::string_view rest = in.value;
                while (true) {
                    const auto comma = rest.find(',');
                    const auto item = trim(rest.substr(0, comma));
                    if (item.empty())
                        in.fail(quote(in.value) + " has an empty item (" + hint + ")");
                    const auto what = "item " + quote(item) + " of " + quote(in.value);
                    out.emplace_back(static_cast<seconds::rep>(duration_ms(in, item, what, false, min_ms, max_ms) / 1000));
                    if (comma == std::string_view::npos)
                        return out;
                    rest.remove_prefix(comma + 1);
                }
            },
            [](const std::vector<seconds>& v) {
                std::string out;
                for (const auto& d : v)
                    out += (out.empty() ? "" : ",") + format_ms(static_cast<std::uint64_t>(d.count()) * 1000);
                return out;
            }};
}

Codec<bool> boolean()
{
    const std::string hint = "use true or false; yes/no, on/off and 1/0 also work";
    return {"bool", hint, "", false,
            [=](const Input& in) {
                for (const char* yes : {"true", "yes", "on", "1"})
                    if (iequals(in.value, yes))
                        return true;
                for (const char* no : {"false", "no", "off", "0"})
                    if (iequals(in.value, no))
                        return false;
                in.fail(quote(in.value) + " is not a boolean (" + hint + ")");
            },
            [](const bool& v) { return std::string(v ? "true" : "false"); }};
}

Codec<Endpoint> endpoint()
{
    const std::string hint = "use ADDRESS:PORT, e.g. 127.0.0.3:2626 or [::1]:2626";
    return {"endpoint", hint, "", false,
            [=](const Input& in) {
                const auto parsed = Endpoint::parse(in.value);
                if (!parsed)
                    in.fail(quote(in.value) + " is not a listening address (" + hint + ")");
                return *parsed;
            },
            [](const Endpoint& v) { return v.str(); }};
}

Codec<std::string> address()
{
    const std::string hint = "use an IPv4 or IPv6 address, e.g. 127.0.0.2";
    return {"address", hint, "", true,
            [=](const Input& in) {
                const auto parsed = IpAddress::parse(in.value);
                if (!parsed)
                    in.fail(quote(in.value) + " is not an IP address (" + hint + ")");
                return parsed->str();
            },
            [](const std::string& v) { return v; }};
}

// Digits only, 1..65535; nullopt otherwise.
std::optional<unsigned> port_number(std::string_view text)
{
    const auto [status, value] = scan_quantity(text, {{"", 1}});
    if (status != Status::ok || value < 1 || value > 65535)
        return std::nullopt;
    return static_cast<unsigned>(value);
}

// "addr@port" or "addr", the form libunbound's ub_ctx_set_fwd takes.
Codec<std::string> resolver()
{
    const std::string hint = "use ADDRESS or ADDRESS@PORT, e.g. 127.0.0.1@53";
    return {"resolver", hint, "", true,
            [=](const Input& in) {
                const auto at = in.value.find('@');
                const auto addr = IpAddress::parse(in.value.substr(0, at));
                std::optional<unsigned> number;
                if (at != std::string_view::npos)
                    number = port_number(in.value.substr(at + 1));
                if (!addr || (at != std::string_view::npos && !number))
                    in.fail(quote(in.value) + " is not a resolver address (" + hint + ")");
                return number ? addr->str() + "@" + std::to_string(*number) : addr->str();
            },
            [](const std::string& v) { return v; }};
}

Codec<std::string> fqdn()
{
    const std::string hint = "use a fully qualified domain name such as mx.example.org";
    return {"fqdn", hint, "", false,
            [=](const Input& in) {
                const auto name = normalize_host_name(in.value);
                if (!name)
                    in.fail(quote(in.value) + " is not a valid host name (" + hint + ")");
                if (!is_fully_qualified(*name))
                    in.fail(quote(in.value) + " is not fully qualified (" + hint + ")");
                return *name;
            },
            [](const std::string& v) { return v; }};
}

Codec<std::string> host()
{
    const std::string hint = "use a domain name such as example.org";
    return {"host", hint, "", false,
            [=](const Input& in) {
                const auto name = normalize_host_name(in.value);
                if (!name)
                    in.fail(quote(in.value) + " is not a valid domain name (" + hint + ")");
                return *name;
            },
            [](const std::string& v) { return v; }};
}

// Zones keep their trailing dot: libunbound's "local-zone:" option wants it.
Codec<std::string> zone()
{
    const std::string hint = "use a zone name such as test. or 127.in-addr.arpa.";
    return {"zone", hint, "", false,
            [=](const Input& in) {
                const auto name = normalize_host_name(in.value);
                if (!name)
                    in.fail(quote(in.value) + " is not a DNS zone name (" + hint + ")");
                return *name + ".";
            },
            [](const std::string& v) { return v; }};
}

bool has_control_character(std::string_view text)
{
    return std::any_of(text.begin(), text.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

// A daemon may chdir("/") after reading its settings, so a relative path is made
// absolute against the configuration file's directory now.
std::string resolve_path(const Input& in, std::string_view text)
{
    const fs::path given{std::string(text)};
    return (given.is_absolute() ? given : in.base_dir / given).lexically_normal().string();
}

Codec<std::string> path(bool empty_ok)
{
    const std::string hint = "use a file name; a relative one is taken from the configuration file's directory";
    return {"path", hint, "", empty_ok,
            [=](const Input& in) {
                if (has_control_character(in.value))
                    in.fail(quote(in.value) + " is not a file name (" + hint + ")");
                return resolve_path(in, in.value);
            },
            [](const std::string& v) { return v; }};
}

// "unix:/path" (made absolute) or "address:port"; nullopt when the value is neither.
// A host name is refused: amtpd connects to an address without a lookup, and every
// front-end must take the same values.
std::optional<std::string> parse_lmtp(const Input& in)
{
    constexpr std::string_view unix_prefix = "unix:";
    if (in.value.substr(0, unix_prefix.size()) == unix_prefix) {
        const auto socket = in.value.substr(unix_prefix.size());
        if (socket.empty() || has_control_character(socket))
            return std::nullopt;
        return "unix:" + resolve_path(in, socket);
    }
    const auto colon = in.value.rfind(':');
    if (colon == std::string_view::npos)
        return std::nullopt;
    const auto number = port_number(in.value.substr(colon + 1));
    const auto name = in.value.substr(0, colon);
    std::optional<std::string> canonical;
    if (name.size() >= 2 && name.front() == '[' && name.back() == ']') {
        if (const auto ip = IpAddress::parse(name); ip && !ip->is_v4())
            canonical = "[" + ip->str() + "]";
    } else if (const auto ip = IpAddress::parse(name); ip && ip->is_v4()) {
        canonical = ip->str();
    }
    if (!canonical || !number)
        return std::nullopt;
    return *canonical + ":" + std::to_string(*number);
}

Codec<std::string> lmtp()
{
    const std::string hint = "use unix:/path/to/socket or ADDRESS:PORT, e.g. 127.0.0.1:24 or [::1]:24";
    return {"lmtp", hint, "", true,
            [=](const Input& in) {
                auto parsed = parse_lmtp(in);
                if (!parsed)
                    in.fail(quote(in.value) + " is not an LMTP address (" + hint + ")");
                return std::move(*parsed);
            },
            [](const std::string& v) { return v; }};
}

// delivery.recipients: "mailbox", "any" or "file:PATH" (the path made absolute).
Codec<std::string> recipients()
{
    const std::string hint = "use mailbox, any or file:/path/to/list";
    return {"recipients", hint, "", false,
            [=](const Input& in) {
                if (in.value == "mailbox" || in.value == "any")
                    return std::string(in.value);
                constexpr std::string_view file_prefix = "file:";
                if (in.value.substr(0, file_prefix.size()) == file_prefix) {
                    const auto file = in.value.substr(file_prefix.size());
                    if (!file.empty() && !has_control_character(file))
                        return "file:" + resolve_path(in, file);
                }
                in.fail(quote(in.value) + " is not a recipient check (" + hint + ")");
                return std::string{};
            },
            [](const std::string& v) { return v; }};
}

Codec<std::string> tls_version()
{
    const std::string hint = "use 1.2 or 1.3";
    return {"tls-version", hint, "", false,
            [=](const Input& in) {
                if (in.value != "1.2" && in.value != "1.3")
                    in.fail(quote(in.value) + " is not a supported TLS version (" + hint + ")");
                return std::string(in.value);
            },
            [](const std::string& v) { return v; }};
}

// The portable user name set of POSIX (letters, digits, '.', '_', '-'; no leading '-').
Codec<std::string> user()
{
    const std::string hint = "use a login name such as amtp, or nothing to keep the current user";
    return {"user", hint, "", true,
            [=](const Input& in) {
                const bool portable = in.value.front() != '-' &&
                                      std::all_of(in.value.begin(), in.value.end(), [](char c) {
                                          return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
                                                 c == '.' || c == '_' || c == '-';
                                      });
                if (!portable)
                    in.fail(quote(in.value) + " is not a user name (" + hint + ")");
                return std::string(in.value);
            },
            [](const std::string& v) { return v; }};
}

// What each type looks like in a file, for the documentation.
struct TypeDoc {
    const char* type;
    const char* syntax;
};

const TypeDoc type_docs[] = {
    {"fqdn", "A fully qualified domain name: at least two labels, the last not all digits. Kept in lower case, "
             "without a trailing dot, an IDN in A-labels (`bücher.example` becomes `xn--bcher-kva.example`)."},
    {"host", "A domain name, normalised like `fqdn`; a single label is allowed."},
    {"zone", "A DNS zone name such as `test.` or `127.in-addr.arpa.`; kept with its trailing dot."},
    {"user", "A login name of letters, digits, `.`, `_` and `-`; empty means none."},
    {"bool", "`true` or `false`; `yes`/`no`, `on`/`off` and `1`/`0` also work, in any case."},
    {"count", "A whole number, without sign or suffix, in the range the option states."},
    {"port", "A TCP port number from 1 to 65535."},
    {"size", "A number of bytes, or with the binary suffix `K` (1024), `M` (1024²) or `G` (1024³), e.g. `25M`."},
    {"duration", "A whole number with `s`, `m`, `h` or `d` (seconds, minutes, hours, days); a bare number is "
                 "seconds. `dns.timeout` also takes `ms`."},
    {"durations", "Durations separated by commas, e.g. `5m,15m,1h`."},
    {"endpoint", "`ADDRESS:PORT`, an IPv6 address in brackets: `127.0.0.3:2626`, `[::1]:2626`."},
    {"address", "An IPv4 or IPv6 address, without port; empty means none."},
    {"resolver", "`ADDRESS` or `ADDRESS@PORT` of a DNS server, e.g. `127.0.0.1@15353` or `::1@53`; empty means "
                 "none."},
    {"path", "A file or directory name. A relative one is taken from the directory of the configuration file, "
             "so the settings hold absolute paths. An optional path may be left empty."},
    {"lmtp", "`unix:/path/to/socket` (a relative path is taken from the configuration file's directory) or "
             "`ADDRESS:PORT` (an IPv4 address, or an IPv6 one in brackets: `[::1]:24`; a host name is not looked "
             "up); empty means none."},
    {"tls-version", "`1.2` or `1.3`."},
    {"recipients", "`mailbox`, `any` or `file:PATH` (a relative path is taken from the configuration file's "
                   "directory)."},
};

// ------------------------------------------------------------------ the table

enum class Occurs { optional, required, repeatable };

struct Option {
    OptionSpec spec;
    const char* example;   // a typical value, for the documentation and messages
    std::string range;     // the type's range when it needs saying ("1 to 65535")
    std::function<void(Settings&, const Input&)> assign;
    std::function<std::vector<std::string>(const Settings&)> show;
};

// Binds one key to one field of Settings through a codec. `field` is a generic lambda
// returning a reference to the field, so the same lambda serves reading (Settings&)
// and showing (const Settings&). A repeatable key appends to a vector of the codec's
// type; any other key assigns.
template <class T, class Field>
Option option(const char* name, Codec<T> codec, Occurs occurs, const char* default_value, const char* example,
              const char* help, Field field)
{
    using Target = std::decay_t<decltype(field(std::declval<Settings&>()))>;
    constexpr bool collects = !std::is_same_v<Target, T>;
    static_assert(!collects || std::is_same_v<Target, std::vector<T>>, "the field does not hold the codec's type");
    // Programming errors in the table itself: every test fails at once if one slips in.
    if (collects != (occurs == Occurs::repeatable))
        throw std::logic_error(std::string("option table: ") + name + ": repeatable keys (only) fill a vector");
    if (collects && *default_value)
        throw std::logic_error(std::string("option table: ") + name + ": a repeatable key has no default");

    Option o{OptionSpec{name, codec.type, default_value, occurs == Occurs::repeatable, occurs == Occurs::required,
                        help},
             example, codec.range, {}, {}};
    o.assign = [codec, field](Settings& settings, const Input& in) {
        if (in.value.empty()) {
            if (collects || !codec.empty_ok)
                in.fail("no value given (" + codec.hint + ")");
            if constexpr (!collects)
                field(settings) = T{};
            return;
        }
        if constexpr (collects)
            field(settings).push_back(codec.parse(in));
        else
            field(settings) = codec.parse(in);
    };
    o.show = [codec, field](const Settings& settings) {
        std::vector<std::string> out;
        if constexpr (collects) {
            for (const auto& value : field(settings))
                out.push_back(codec.format(value));
        } else {
            out.push_back(codec.format(field(settings)));
        }
        return out;
    };
    return o;
}

// The one table. Top-level keys come first: in an INI file they must precede every
// [section]. Defaults here must equal those written in settings.hpp (a unit test checks).
const std::vector<Option>& options()
{
    static const std::vector<Option> table = {
        option("hostname", fqdn(), Occurs::required, "", "mx.example.org",
               "This host's fully qualified domain name: used in the greeting and in EHLO, and the name its "
               "certificate and its PTR record must carry (draft s4.3, profile B2).",
               [](auto& s) -> auto& { return s.hostname; }),
        option("user", user(), Occurs::optional, "", "amtp",
               "Drop privileges to this user after binding the listeners; empty: keep the current user.",
               [](auto& s) -> auto& { return s.user; }),

        option("listen.public", endpoint(), Occurs::repeatable, "", "127.0.0.3:2626",
               "A listener for public network connections: TLS from the first byte (profile B1). The draft wants "
               "a system port here (26 by this project's choice); a user port is for test setups. No listener is "
               "needed by programs that only send (amtp-send).",
               [](auto& s) -> auto& { return s.listen.public_endpoints; }),
        option("listen.private", endpoint(), Occurs::repeatable, "", "127.0.0.3:2687",
               "A listener for private network connections: clients certified by a tls.private-ca, may use a "
               "user port (draft s4.1, s7).",
               [](auto& s) -> auto& { return s.listen.private_endpoints; }),
        option("listen.starttls", boolean(), Occurs::optional, "false", "true",
               "Start listeners in plain text and require STARTTLS; before it only EHLO, STARTTLS, NOOP, RSET and "
               "QUIT are accepted (profile B1). false: TLS from the first byte.",
               [](auto& s) -> auto& { return s.listen.starttls; }),
        option("listen.header-carrier", boolean(), Occurs::optional, "true", "false",
               "Accept MAIL without MPC= and take the value from an AMTP-MPC header field instead, judged at the "
               "end of DATA (profile B5), so that MTAs that cannot send the parameter (Exim) can deliver. false: "
               "MAIL without MPC= is refused at once with 555 5.5.4.",
               [](auto& s) -> auto& { return s.listen.header_carrier; }),

        option("tls.certificate", path(true), Occurs::optional, "", "chain.pem",
               "PEM file with this host's certificate followed by its intermediate CAs; needs tls.key.",
               [](auto& s) -> auto& { return s.tls.certificate; }),
        option("tls.key", path(true), Occurs::optional, "", "key.pem",
               "PEM file with the private key of tls.certificate; needs tls.certificate.",
               [](auto& s) -> auto& { return s.tls.key; }),
        option("tls.trusted-ca", path(false), Occurs::repeatable, "", "ca.pem",
               "PEM file of CA certificates trusted for public network peers (draft s3.1, s4.2).",
               [](auto& s) -> auto& { return s.tls.trusted_ca; }),
        option("tls.private-ca", path(false), Occurs::repeatable, "", "private-ca.pem",
               "PEM file of a private CA: a client it certified makes a private network connection (draft s7). "
               "Never a CA that is trusted outside the private network.",
               [](auto& s) -> auto& { return s.tls.private_ca; }),
        option("tls.crl", path(true), Occurs::optional, "", "crl.pem",
               "PEM file of certificate revocation lists, checked for the peer's certificate and its chain "
               "(profile B3); empty: no revocation check.",
               [](auto& s) -> auto& { return s.tls.crl; }),
        option("tls.require-client-eku", boolean(), Occurs::optional, "false", "true",
               "Require the TLS client-authentication extended key usage in client certificates. false accepts a "
               "serverAuth-only certificate, as public CAs issue since 2026 (profile B3).",
               [](auto& s) -> auto& { return s.tls.require_client_eku; }),
        option("tls.min-version", tls_version(), Occurs::optional, "1.2", "1.3",
               "The oldest TLS version accepted or offered.",
               [](auto& s) -> auto& { return s.tls.min_version; }),
        option("tls.ticket-keys", path(true), Occurs::optional, "", "ticket.keys",
               "amtpd: file of TLS session ticket keys shared by every host serving one domain, so that a session "
               "made with one host resumes with another and survives reloads. One key a line, newest first: "
               "`NAME HMAC-KEY AES-KEY` in hex (16, 32 and 32 bytes); the first encrypts new tickets, the others "
               "still decrypt older ones (which are then renewed). Secret (a key can make a ticket that resumes "
               "as any peer): mode 600, owned by the user amtpd runs as; read at start and at every reload. "
               "`amtp-config --new-ticket-key FILE` rotates it. Empty: random keys of each process, new at every "
               "start and reload.",
               [](auto& s) -> auto& { return s.tls.ticket_keys; }),

        option("dns.resolver", resolver(), Occurs::optional, "", "127.0.0.1@15353",
               "DNS server to send every query to; empty: the servers of /etc/resolv.conf.",
               [](auto& s) -> auto& { return s.dns.resolver; }),
        option("dns.forward-confirm", boolean(), Occurs::optional, "false", "true",
               "Also require the client's PTR name to resolve back (A/AAAA) to the client's address (profile B2).",
               [](auto& s) -> auto& { return s.dns.forward_confirm; }),
        option("dns.timeout", duration_with_ms(milliseconds(1), milliseconds(3'600'000)), Occurs::optional, "5s",
               "1500ms",
               "How long one lookup may take; after that it is a temporary failure (451 4.4.3, never a permanent "
               "refusal, profile B4).",
               [](auto& s) -> auto& { return s.dns.timeout; }),
        option("dns.trust-anchor", path(true), Occurs::optional, "", "root.key",
               "DNSSEC trust anchor file; empty: answers are not validated.",
               [](auto& s) -> auto& { return s.dns.trust_anchor; }),
        option("dns.nodefault-zone", zone(), Occurs::repeatable, "", "test.",
               "A zone the in-process resolver must not answer from its built-in defaults. Needed only without "
               "dns.resolver: libunbound then answers test., 127.in-addr.arpa. and the RFC 1918 / AS112 reverse "
               "zones itself with NXDOMAIN. With dns.resolver set, every query goes to that resolver.",
               [](auto& s) -> auto& { return s.dns.nodefault_zones; }),

        option("delivery.local-domain", host(), Occurs::repeatable, "", "b.test",
               "A domain whose mail is delivered here (to a Maildir or by LMTP) rather than relayed.",
               [](auto& s) -> auto& { return s.delivery.local_domains; }),
        option("delivery.maildir-root", path(false), Occurs::optional, "/var/mail/amtp", "maildirs",
               "Directory holding one Maildir per local recipient.",
               [](auto& s) -> auto& { return s.delivery.maildir_root; }),
        option("delivery.lmtp", lmtp(), Occurs::optional, "", "unix:/run/dovecot/lmtp",
               "Hand local mail to this LMTP server instead of writing Maildirs; empty: Maildir delivery.",
               [](auto& s) -> auto& { return s.delivery.lmtp; }),
        option("delivery.recipients", recipients(), Occurs::optional, "mailbox", "file:recipients.txt",
               "Which recipients of a local domain exist; any other is refused at RCPT with 550 5.1.1, so a peer "
               "cannot make the server create mailboxes without bound. mailbox: the Maildir "
               "<maildir-root>/<domain>/<local-part> must exist (with delivery.lmtp: the agent's reply decides, "
               "after DATA); file:PATH: the addresses listed in PATH, one per line, # starts a comment, re-read on "
               "reload; any: every local part, its Maildir created on first delivery.",
               [](auto& s) -> auto& { return s.delivery.recipients; }),

        option("policy.file", path(true), Occurs::optional, "", "policy.xml",
               "The site's MPC policy in XML (profile B6): EHLO declarations, per-recipient rules, sender values, "
               "private networks. Empty: no site rules, which the draft reads as `ALLOW */*`.",
               [](auto& s) -> auto& { return s.policy.file; }),

        option("client.source", address(), Occurs::optional, "", "127.0.0.2",
               "Source address of outgoing connections; its PTR record must name this host (draft s4.3). Empty: "
               "the system chooses.",
               [](auto& s) -> auto& { return s.client.source; }),
        option("client.port", port(), Occurs::optional, "26", "2626",
               "Server port for outgoing connections when no SRV record gives one (SRV records carry their own).",
               [](auto& s) -> auto& { return s.client.port; }),

        option("queue.directory", path(false), Occurs::optional, "/var/spool/amtp", "spool",
               "Directory of messages waiting for delivery to other hosts.",
               [](auto& s) -> auto& { return s.queue.directory; }),
        option("queue.retry-schedule", durations(seconds(1), seconds(365 * 86400)), Occurs::optional,
               "5m,15m,30m,1h,2h,4h", "1m,10m,1h",
               "Waits between delivery attempts after temporary failures; the last one repeats until "
               "queue.max-age.",
               [](auto& s) -> auto& { return s.queue.retry_schedule; }),
        option("queue.max-age", duration(seconds(1), seconds(365 * 86400)), Occurs::optional, "5d", "2d",
               "How long a message may wait in the queue before it is returned to its sender as undeliverable.",
               [](auto& s) -> auto& { return s.queue.max_age; }),
        option("queue.attempt-timeout", duration(seconds(1), seconds(86400)), Occurs::optional, "15m", "30m",
               "Longest one delivery attempt to a domain may take, from the SRV lookup to QUIT, whatever "
               "each step's own timeout: a server that answers slowly but forever cannot hold a delivery "
               "thread. The attempt then counts as a temporary failure.",
               [](auto& s) -> auto& { return s.queue.attempt_timeout; }),

        option("limits.max-message-size", size(1, 1ull << 40), Occurs::optional, "25M", "50M",
               "Largest message accepted, counted in bytes of message data.",
               [](auto& s) -> auto& { return s.limits.max_message_size; }),
        option("limits.max-recipients", count(1, std::numeric_limits<unsigned>::max()), Occurs::optional, "100",
               "500", "Most recipients accepted in one transaction (RFC 5321 asks for at least 100).",
               [](auto& s) -> auto& { return s.limits.max_recipients; }),
        option("limits.command-timeout", duration(seconds(1), seconds(86400)), Occurs::optional, "5m", "2m",
               "How long to wait for the next command before closing the connection (RFC 5321 s4.5.3.2: at "
               "least 5 minutes).",
               [](auto& s) -> auto& { return s.limits.command_timeout; }),
        option("limits.data-timeout", duration(seconds(1), seconds(86400)), Occurs::optional, "10m", "3m",
               "How long to wait for more message data before closing the connection.",
               [](auto& s) -> auto& { return s.limits.data_timeout; }),
        option("limits.max-errors", count(1, std::numeric_limits<unsigned>::max()), Occurs::optional, "10", "5",
               "Refused commands tolerated in one session before the connection is closed.",
               [](auto& s) -> auto& { return s.limits.max_errors; }),
        option("limits.max-connections", count(1, std::numeric_limits<unsigned>::max()), Occurs::optional, "1000",
               "200", "Connections served at once, in all.",
               [](auto& s) -> auto& { return s.limits.max_connections; }),
        option("limits.max-connections-per-ip", count(1, std::numeric_limits<unsigned>::max()), Occurs::optional,
               "20", "5", "Connections served at once from one client address (one IPv6 client: its "
               "limits.ipv6-prefix-length network).",
               [](auto& s) -> auto& { return s.limits.max_connections_per_ip; }),
        option("limits.ipv6-prefix-length", count(1, 128), Occurs::optional, "64", "56",
               "IPv6 clients are counted for limits.max-connections-per-ip by network of this prefix length: "
               "one host usually holds a whole /64.",
               [](auto& s) -> auto& { return s.limits.ipv6_prefix_length; }),
    };
    return table;
}

const Option* find_option(std::string_view name)
{
    for (const auto& o : options())
        if (name == o.spec.name)
            return &o;
    return nullptr;
}

// Sections in table order: "" (top level), then listen, tls, ...
std::vector<std::string> sections()
{
    std::vector<std::string> out;
    for (const auto& o : options()) {
        const std::string section(split_name(o.spec.name).first);
        if (std::find(out.begin(), out.end(), section) == out.end())
            out.push_back(section);
    }
    return out;
}

std::string section_label(std::string_view section)
{
    return section.empty() ? "before the first [section]" : "in [" + std::string(section) + "]";
}

// ------------------------------------------------------------------ messages

std::string unknown_section_message(const std::string& section)
{
    std::string known;
    for (const auto& s : sections()) {
        if (s.empty())
            continue;
        if (distance(s, section) <= 2)
            return "unknown section (did you mean [" + s + "]?)";
        known += (known.empty() ? "" : ", ") + s;
    }
    return "unknown section (the sections are " + known + ")";
}

std::string unknown_key_message(const std::string& name)
{
    const auto [section, key] = split_name(name);
    // The key exists, but in another section (or belongs before the first one).
    for (const auto& o : options()) {
        const auto [other_section, other_key] = split_name(o.spec.name);
        if (iequals(other_key, key) && other_section != section)
            return "unknown key (" + std::string(other_key) + " belongs " + section_label(other_section) + ")";
    }
    const Option* nearest = nullptr;
    std::size_t best = 3; // more than two edits away is not a typo
    std::string keys;
    for (const auto& o : options()) {
        const auto [other_section, other_key] = split_name(o.spec.name);
        if (other_section != section)
            continue;
        keys += (keys.empty() ? "" : ", ") + std::string(other_key);
        if (const auto d = distance(o.spec.name, name); d < best) {
            best = d;
            nearest = &o;
        }
    }
    if (nearest)
        return std::string("unknown key (did you mean ") + nearest->spec.name + "?)";
    return "unknown key (the keys " + section_label(section) + " are " + keys + ")";
}

// ------------------------------------------------------------------ the scanner

struct KeyLine {
    unsigned line;
    std::string name;   // "section.key", as Boost names it
};

struct Scanned {
    std::string clean;                                   // the lines Boost reads
    std::vector<KeyLine> keys;                           // key lines in file order
    std::map<std::string, std::vector<unsigned>> lines;  // "section.key" -> its lines
};

// A line that is none of blank, comment, [section] or key = value. The key blamed is
// the one the operator evidently meant when the line starts with a known key.
[[noreturn]] void syntax_error(const std::string& file, unsigned line, const std::string& section,
                               std::string_view text)
{
    const auto word = text.substr(0, text.find_first_of(" \t"));
    const std::string meant = section.empty() ? std::string(word) : section + "." + std::string(word);
    const std::string where = section.empty() ? "(top level)" : "[" + section + "]";
    if (text.front() == '[')
        throw ConfigError(file, line, where, quote(text) + " is not a section header (write [name])");
    if (text.front() == '=')
        throw ConfigError(file, line, where, quote(text) + " has no key before \"=\" (write key = value)");
    if (find_option(meant))
        throw ConfigError(file, line, meant,
                          quote(text) + " has no \"=\" (write " + std::string(word) + " = value)");
    throw ConfigError(file, line, where,
                      quote(text) + " is not a setting (write key = value, a [section] header or a # comment)");
}

Scanned scan(const std::string& text, const std::string& file)
{
    Scanned out;
    std::string section;
    unsigned number = 0;
    for (std::size_t start = 0; start < text.size();) {
        const auto end = std::min(text.find('\n', start), text.size());
        std::string_view raw(text.data() + start, end - start);
        start = end + 1;
        ++number;
        if (number == 1 && raw.substr(0, 3) == "\xEF\xBB\xBF")
            raw.remove_prefix(3); // a byte-order mark left by a Windows editor

        auto line = trim(raw);  // also drops the CR of a CRLF line end
        // Comments: whole lines starting with '#' or ';', and anything after a '#'
        // (Boost's rule, so a value cannot contain '#').
        line = trim(line.substr(0, line.find('#')));
        if (line.empty() || line.front() == ';') {
            out.clean += '\n';
            continue;
        }
        if (line.front() == '[') {
            if (line.back() != ']' || line.size() < 2)
                syntax_error(file, number, section, line);
            const std::string name(trim(line.substr(1, line.size() - 2)));
            if (name.empty())
                syntax_error(file, number, section, line);
            const auto known = sections();
            if (std::find(known.begin(), known.end(), name) == known.end())
                throw ConfigError(file, number, "[" + name + "]", unknown_section_message(name));
            section = name;
            out.clean += "[" + name + "]\n";
            continue;
        }
        const auto equals = line.find('=');
        if (equals == std::string_view::npos || equals == 0)
            syntax_error(file, number, section, line);
        const auto key = trim(line.substr(0, equals));
        const auto value = trim(line.substr(equals + 1));
        const std::string name = section.empty() ? std::string(key) : section + "." + std::string(key);
        // Boost would keep the quotes as part of the value, which no type wants.
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
            throw ConfigError(file, number, name,
                              "values are written without quotes (write " + std::string(key) + " = " +
                                  std::string(value.substr(1, value.size() - 2)) + ")");
        out.keys.push_back({number, name});
        out.lines[name].push_back(number);
        out.clean += std::string(key) + " = " + std::string(value) + "\n";
    }
    return out;
}

// ------------------------------------------------------------------ cross-checks

unsigned line_of(const Scanned& scanned, const std::string& name, std::size_t occurrence = 0)
{
    const auto found = scanned.lines.find(name);
    return found != scanned.lines.end() && occurrence < found->second.size() ? found->second[occurrence] : 0;
}

void check_together(const Settings& s, const Scanned& scanned)
{
    const bool certificate = !s.tls.certificate.empty();
    const bool key = !s.tls.key.empty();
    if (certificate && !key)
        throw ConfigError(s.source, line_of(scanned, "tls.certificate"), "tls.certificate",
                          "given without tls.key (a certificate is useless without its private key)");
    if (key && !certificate)
        throw ConfigError(s.source, line_of(scanned, "tls.key"), "tls.key",
                          "given without tls.certificate (the key needs its certificate)");
}

// A listener address given twice (in one list or both) could never be bound twice.
void check_listeners(const Settings& s, const Scanned& scanned)
{
    struct Listener {
        unsigned line;
        std::string key;
        std::string address;
    };
    std::vector<Listener> all;
    for (std::size_t i = 0; i < s.listen.public_endpoints.size(); ++i)
        all.push_back({line_of(scanned, "listen.public", i), "listen.public", s.listen.public_endpoints[i].str()});
    for (std::size_t i = 0; i < s.listen.private_endpoints.size(); ++i)
        all.push_back({line_of(scanned, "listen.private", i), "listen.private", s.listen.private_endpoints[i].str()});
    std::sort(all.begin(), all.end(), [](const Listener& a, const Listener& b) { return a.line < b.line; });
    for (std::size_t i = 0; i < all.size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
            if (all[i].address == all[j].address)
                throw ConfigError(s.source, all[i].line, all[i].key,
                                  all[i].address + " is already a listener (" + all[j].key + " on line " +
                                      std::to_string(all[j].line) + ")");
}

std::string markdown_cell(std::string text)
{
    std::string out;
    for (char c : text) {
        if (c == '|')
            out += '\\';
        out += c;
    }
    return out;
}

// ------------------------------------------------------------------ the reference

// The texts both references share (docs/CONFIGURATION.md and amtp.ini(5)), written
// with one markup, `code`, which each renderer translates.
constexpr const char* reference_intro =
    "Every AMTP program (amtpd, amtp-send and the Exim, OpenSMTPD and Haraka adapters) reads its runtime "
    "settings from one INI-style file (profile decision B8). `amtp-config --check-config FILE` reads a file "
    "as they do: it prints the effective settings and `configuration OK`, or the first error as "
    "`file:line: key: message` and exits with 78 (EX_CONFIG).";

const char* const file_format_rules[] = {
    "One `key = value` per line; blanks around the key and the value are ignored. Values are written "
    "without quotes.",
    "`[section]` starts a section: after `[tls]`, `key = key.pem` sets `tls.key`. The top-level keys "
    "(`hostname`, `user`) come before the first section, where a key may also be written in full "
    "(`tls.key = key.pem`), as `--check-config` prints them.",
    "Lines starting with `#` or `;` are comments. A `#` later in a line also starts a comment, so a value "
    "cannot contain `#`.",
    "CRLF line ends and a UTF-8 byte-order mark are accepted.",
    "An unknown section or key is an error, and so is a key given twice, unless the key is repeatable: "
    "then every line adds a value, in file order.",
    "A key left out takes its default; a required key must be given.",
    "`tls.certificate` and `tls.key` are given together or not at all, and a listener address may appear "
    "only once.",
    "Files are not opened when the settings are read; the module that uses a file reports a problem "
    "with it.",
};

// The keys of the man page's example: a server for one domain, each with the table's
// example value (a unit test loads the example as it is printed).
const char* const man_example_keys[] = {"hostname",       "listen.public",        "tls.certificate", "tls.key",
                                        "tls.trusted-ca", "delivery.local-domain", "policy.file"};

// The value types the table uses, in type_docs order. A type without documentation is
// a programming error in the table.
std::vector<const TypeDoc*> used_type_docs()
{
    for (const auto& o : options()) {
        const bool documented = std::any_of(std::begin(type_docs), std::end(type_docs),
                                            [&](const TypeDoc& d) { return std::string_view(d.type) == o.spec.type; });
        if (!documented)
            throw std::logic_error(std::string("option table: type ") + o.spec.type + " has no documentation");
    }
    std::vector<const TypeDoc*> out;
    for (const auto& doc : type_docs) {
        const bool used = std::any_of(options().begin(), options().end(),
                                      [&](const Option& o) { return std::string_view(o.spec.type) == doc.type; });
        if (used)
            out.push_back(&doc);
    }
    return out;
}

// An option's help, its range when the type's needs saying, and its example line.
std::string option_description(const Option& o)
{
    std::string out = o.spec.help;
    if (!o.range.empty())
        out += " Range: " + o.range + ".";
    out += std::string(" Example: `") + std::string(split_name(o.spec.name).second) + " = " + o.example + "`.";
    return out;
}

// ------------------------------------------------------------------ roff (man(7))

// One character for roff: a backslash as \e, a non-ASCII UTF-8 sequence as \[uXXXX]
// (so the page needs no input encoding), a hyphen as \- (a minus, the character an
// operator types) when `typed` says so.
void roff_char(std::string& out, std::string_view text, std::size_t& i, bool typed)
{
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\\') {
        out += "\\e";
    } else if (c == '-') {
        out += typed ? "\\-" : "-";
    } else if (c < 0x80) {
        out += static_cast<char>(c);
    } else {
        // The table's texts are ours and valid UTF-8; a stray byte would still not
        // reach the page raw.
        const std::size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        std::uint32_t code = length == 1 ? c : c & (0x7Fu >> length);
        for (std::size_t k = 1; k < length && i + 1 < text.size(); ++k)
            code = (code << 6) | (static_cast<unsigned char>(text[++i]) & 0x3Fu);
        char escape[16];
        std::snprintf(escape, sizeof escape, "\\[u%04X]", static_cast<unsigned>(code));
        out += escape;
    }
}

// Whether a word of prose is something an operator types, so that its hyphens are
// minus signs and the formatter must not hyphenate it: an option name (tls.key,
// limits.ipv6-prefix-length), a path or placeholder (/etc/resolv.conf,
// <maildir-root>/...), an address or endpoint (file:PATH), a file or zone name with a
// hyphen (private-ca.pem), a parameter (MPC=), a name with an underscore (EX_CONFIG),
// a program or header field (amtp-send, AMTP-MPC). Prose keeps its hyphens and may be
// hyphenated ("re-read", "serverAuth-only", "e.g.").
bool typed_word(std::string_view word)
{
    while (!word.empty() && word.front() == '(')
        word.remove_prefix(1);
    while (!word.empty() && std::strchr(".,;:)", word.back()))
        word.remove_suffix(1);
    const auto alnum = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    };
    if (std::none_of(word.begin(), word.end(), alnum))
        return false;
    if (iequals(word.substr(0, 5), "amtp-") || word.find_first_of("/<@:=_") != std::string_view::npos)
        return true;
    const auto dot = word.find('.');
    if (dot == std::string_view::npos)
        return false;
    if (word.find('-') != std::string_view::npos)
        return true;
    const auto known = sections();
    return std::find(known.begin(), known.end(), word.substr(0, dot)) != known.end();
}

// One line of roff text from a text with `code` markup. Code is bold and stays on one
// line (its blanks unbreakable), typed as it is: hyphens are minus signs and \% keeps
// the formatter from hyphenating it at a line end ("tls.cer-" "tificate"). Prose words
// that typed_word() finds are treated alike. A `literal` text (a line of an example
// file, a type name) has no markup and every hyphen is a minus. The line never starts
// with a control character.
std::string roff_line(std::string_view text, bool literal = false)
{
    std::string out;
    bool code = false;
    bool typed = false;   // the current prose word: a run between blanks and backticks
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (literal) {
            roff_char(out, text, i, true);
            continue;
        }
        if (text[i] == '`') {
            code = !code;
            out += code ? "\\fB\\%" : "\\fR";
            continue;
        }
        if (code) {
            if (text[i] == ' ')
                out += "\\ ";
            else
                roff_char(out, text, i, true);
            continue;
        }
        if (text[i] != ' ' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '`')) {
            const auto end = std::min(text.find_first_of(" `", i), text.size());
            typed = typed_word(text.substr(i, end - i));
            if (typed)
                out += "\\%";
        }
        roff_char(out, text, i, typed);
    }
    if (code)
        throw std::logic_error("settings reference: unclosed ` in: " + std::string(text));
    if (!out.empty() && (out.front() == '.' || out.front() == '\''))
        out.insert(0, "\\&");
    return out;
}
} // namespace

// ---------------------------------------------------------------------- public API

const std::vector<OptionSpec>& option_table()
{
    static const std::vector<OptionSpec> specs = [] {
        std::vector<OptionSpec> out;
        for (const auto& o : options())
            out.push_back(o.spec);
        return out;
    }();
    return specs;
}

Settings load_settings(const std::string& path)
{
    // An ifstream opens a directory without complaint and then reads nothing, which
    // would surface as a baffling "hostname: required key missing".
    std::error_code ignored;
    if (fs::is_directory(path, ignored))
        throw ConfigError(path, 0, "", "cannot read the configuration file: it is a directory");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw ConfigError(path, 0, "", std::string("cannot read the configuration file: ") + std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad())
        throw ConfigError(path, 0, "", std::string("cannot read the configuration file: ") + std::strerror(errno));
    return load_settings_string(text.str(), path);
}

Settings load_settings_string(const std::string& text, const std::string& source_name)
{
    const std::string& file = source_name;
    const Scanned scanned = scan(text, file);

    po::options_description description;
    for (const auto& o : options()) {
        if (o.spec.repeatable)
            description.add_options()(o.spec.name, po::value<std::vector<std::string>>());
        else
            description.add_options()(o.spec.name, po::value<std::string>());
    }
    po::variables_map vm;
    try {
        std::istringstream in(scanned.clean);
        po::store(po::parse_config_file(in, description, false), vm);
    } catch (const po::unknown_option& e) {
        const auto name = e.get_option_name();
        throw ConfigError(file, line_of(scanned, name), name, unknown_key_message(name));
    } catch (const po::multiple_occurrences& e) {
        const auto name = e.get_option_name();
        throw ConfigError(file, line_of(scanned, name, 1), name,
                          "given twice (first on line " + std::to_string(line_of(scanned, name)) +
                              "); this key takes one value");
    } catch (const po::error& e) {
        // The scanner refuses every line Boost could object to; should Boost still
        // complain, say what it said rather than fail without a word.
        throw ConfigError(file, 0, "", std::string("cannot read the configuration file: ") + e.what());
    }

    Settings settings;
    settings.source = source_name;
    const fs::path base_dir = fs::absolute(source_name.empty() ? fs::path(".") : fs::path(source_name))
                                  .parent_path();

    // The table's defaults first, then the file's values in file order, so the first
    // bad value reported is the first in the file.
    for (const auto& o : options()) {
        if (*o.spec.default_value) {
            const std::string key = o.spec.name;
            o.assign(settings, Input{o.spec.default_value, file, 0, key, base_dir});
        }
    }
    std::map<std::string, std::size_t> occurrence;
    for (const auto& [line, name] : scanned.keys) {
        const Option* o = find_option(name);
        const auto found = vm.find(name);
        if (!o || found == vm.end())
            throw std::logic_error("settings: Boost and the scanner disagree about " + name);
        const std::string value = o->spec.repeatable
                                      ? found->second.as<std::vector<std::string>>().at(occurrence[name]++)
                                      : found->second.as<std::string>();
        o->assign(settings, Input{value, file, line, name, base_dir});
    }

    for (const auto& o : options()) {
        if (o.spec.required && !scanned.lines.count(o.spec.name)) {
            const auto [section, key] = split_name(o.spec.name);
            throw ConfigError(file, 0, o.spec.name,
                              "required key missing (add " + std::string(key) + " = " + o.example + " " +
                                  section_label(section) + ")");
        }
    }
    check_together(settings, scanned);
    check_listeners(settings, scanned);
    return settings;
}

std::string settings_help()
{
    std::vector<std::pair<std::string, const Option*>> rows;
    std::size_t width = 0;
    for (const auto& o : options()) {
        std::string type = o.spec.type;
        std::transform(type.begin(), type.end(), type.begin(),
                       [](char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; });
        std::string left = std::string(o.spec.name) + "=" + type;
        width = std::max(width, left.size());
        rows.emplace_back(std::move(left), &o);
    }
    std::string out;
    for (const auto& [left, o] : rows) {
        std::string notes = o->spec.required ? "required" : o->spec.repeatable ? "repeatable; " : "";
        if (!o->spec.required)
            notes += std::string("default: ") + (*o->spec.default_value ? o->spec.default_value : "none");
        out += "  " + left + std::string(width - left.size() + 2, ' ') + o->spec.help + " (" + notes + ")\n";
    }
    return out;
}

std::string settings_markdown()
{
    std::string out =
        "<!-- Generated by `amtp-config --markdown` from the option table in core/src/settings.cpp: do not edit. "
        "A unit test keeps this file equal to the table. -->\n"
        "# Configuration reference\n"
        "\n" +
        std::string(reference_intro) + " `examples/amtpd.ini` is a commented example.\n"
        "\n"
        "## File format\n"
        "\n";
    for (const char* rule : file_format_rules)
        out += std::string("- ") + rule + "\n";
    out +=
        "\n"
        "## Value types\n"
        "\n"
        "| Type | Written as |\n"
        "|---|---|\n";
    for (const TypeDoc* doc : used_type_docs())
        out += "| `" + std::string(doc->type) + "` | " + markdown_cell(doc->syntax) + " |\n";

    for (const auto& section : sections()) {
        out += section.empty() ? "\n## Top level\n\nThese keys come before the first `[section]`.\n"
                               : "\n## [" + section + "]\n";
        out += "\n| Key | Type | Default | Repeatable | Description |\n|---|---|---|---|---|\n";
        for (const auto& o : options()) {
            if (split_name(o.spec.name).first != section)
                continue;
            const std::string fallback = o.spec.required ? "*required*" : "*none*";
            out += "| `" + std::string(o.spec.name) + "` | " + o.spec.type + " | " +
                   (*o.spec.default_value ? "`" + std::string(o.spec.default_value) + "`" : fallback) + " | " +
                   (o.spec.repeatable ? "yes" : "no") + " | " + markdown_cell(option_description(o)) + " |\n";
        }
    }
    return out;
}

std::string settings_man()
{
    // No date in the title line: the page changes only when the table does. Text is
    // left-aligned: justified, the long unbreakable names and paths of the table would
    // stretch the blanks of whole lines.
    std::string out =
        ".\\\" Generated by amtp-config --man from the option table in core/src/settings.cpp: do not edit.\n"
        ".\\\" A unit test keeps this file equal to the table.\n"
        ".TH AMTP.INI 5 \"\" AMTP \"File Formats Manual\"\n"
        ".ad l\n"
        ".SH NAME\n"
        "amtp.ini \\- settings file of the AMTP programs\n"
        ".SH SYNOPSIS\n"
        ".I /etc/amtp/amtp.ini\n"
        ".SH DESCRIPTION\n" +
        roff_line(reference_intro) + "\n"
        ".SS File format\n";
    for (const char* rule : file_format_rules)
        out += ".IP \\(bu 2\n" + roff_line(rule) + "\n";
    out += ".SS Value types\n";
    for (const TypeDoc* doc : used_type_docs())
        out += ".TP\n\\fI" + roff_line(doc->type, true) + "\\fR\n" + roff_line(doc->syntax) + "\n";

    out += ".SH SETTINGS\n";
    for (const auto& section : sections()) {
        out += section.empty() ? ".SS Top level\n" + roff_line("These keys come before the first `[section]`.") + "\n"
                               : ".SS [" + section + "]\n";
        for (const auto& o : options()) {
            if (split_name(o.spec.name).first != section)
                continue;
            const std::string default_value =
                o.spec.required ? "required"
                : *o.spec.default_value ? "default `" + std::string(o.spec.default_value) + "`"
                                        : "no default";
            out += ".TP\n" + roff_line("`" + std::string(o.spec.name) + "` = ") + "\\fI" +
                   roff_line(o.spec.type, true) + "\\fR (" + roff_line(default_value) +
                   (o.spec.repeatable ? ", repeatable" : "") + ")\n" + roff_line(option_description(o)) + "\n";
        }
    }

    out += ".SH FILES\n"
           ".TP\n"
           ".I /etc/amtp/amtp.ini\n"
           "The settings file as the Debian package installs it. Each program reads the file it is\n"
           "given: see its page.\n"
           ".SH EXAMPLES\n"
           "A server for one domain, with its certificate, the CAs it trusts and a policy file, the\n"
           "paths taken from the directory of the settings file:\n"
           ".PP\n"
           ".RS 4\n"
           ".EX\n";
    std::string section;
    for (const char* name : man_example_keys) {
        const Option* o = find_option(name);
        if (!o)
            throw std::logic_error(std::string("settings_man: the example names no option ") + name);
        const auto [option_section, key] = split_name(o->spec.name);
        if (option_section != section) {
            section = option_section;
            out += "\n" + roff_line("[" + section + "]", true) + "\n";
        }
        out += roff_line(std::string(key) + " = " + o->example, true) + "\n";
    }
    out += ".EE\n"
           ".RE\n"
           ".PP\n" +
           roff_line("`amtp-config --check-config /etc/amtp/amtp.ini` checks a file and prints every setting "
                     "with its effective value. The source tree's `examples/amtpd.ini` is a commented example "
                     "that names every key.") +
           "\n"
           ".SH SEE ALSO\n"
           ".BR amtp\\-config (1),\n"
           ".BR amtp\\-send (1),\n"
           ".BR amtp\\-policy (5),\n"
           ".BR amtpd (8)\n";
    return out;
}

std::string describe_settings(const Settings& settings)
{
    std::string out;
    for (const auto& o : options()) {
        auto values = o.show(settings);
        if (values.empty())
            values.emplace_back();
        for (const auto& value : values)
            out += std::string(o.spec.name) + " = " + (value.empty() ? "(none)" : value) + "\n";
    }
    return out;
}

IpAddress connection_limit_key(const Limits& limits, const IpAddress& peer)
{
    return peer.is_v4() ? peer : peer.masked(limits.ipv6_prefix_length);
}

} // namespace amtp
