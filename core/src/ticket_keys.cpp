#include "amtp/ticket_keys.hpp"

#include "amtp/errors.hpp"
#include "unique_fd.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>

namespace amtp {

namespace fs = std::filesystem;

namespace {

constexpr const char* format_hint = "one key a line, newest first: NAME HMAC-KEY AES-KEY in hex";
// Far more than any real file (a few keys of 165 characters); stops a wrong path
// (a log, a device) from being read whole.
constexpr off_t max_file_size = 1 << 20;

[[noreturn]] void fail(const std::string& source, unsigned line, const std::string& message)
{
    throw ConfigError(source, line, ticket_keys_setting, message);
}

std::string errno_text(int error)
{
    return std::strerror(error);
}

// Wipes a buffer that held key material when it goes, however it goes.
struct Wiped {
    std::string& text;
    ~Wiped() { OPENSSL_cleanse(text.data(), text.size()); }
};

int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

template <std::size_t N>
bool parse_hex(std::string_view text, std::array<unsigned char, N>& out)
{
    if (text.size() != 2 * N)
        return false;
    for (std::size_t i = 0; i < N; ++i) {
        const int high = hex_digit(text[2 * i]);
        const int low = hex_digit(text[2 * i + 1]);
        if (high < 0 || low < 0)
            return false;
        out[i] = static_cast<unsigned char>(high << 4 | low);
    }
    return true;
}

template <std::size_t N>
void append_hex(std::string& out, const std::array<unsigned char, N>& bytes)
{
    static constexpr char digits[] = "0123456789abcdef";
    for (const unsigned char b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 0xf];
    }
}

bool blank(char c)
{
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view text)
{
    while (!text.empty() && blank(text.front()))
        text.remove_prefix(1);
    while (!text.empty() && blank(text.back()))
        text.remove_suffix(1);
    return text;
}

std::string utc_now()
{
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return stamp;
}

// Replaces `path` by a file holding `text`: a temporary file beside it (mode 600,
// given `owner` when there is one), synced, renamed over it, the directory synced.
void replace_file(const std::string& path, const std::string& text, const struct stat* owner)
{
    std::string temporary = path + ".XXXXXX";
    UniqueFd fd(::mkstemp(temporary.data()));
    if (!fd)
        fail(path, 0, "cannot create a file beside it: " + errno_text(errno));
    const auto give_up = [&](const std::string& what, int error) {
        fd.reset();
        ::unlink(temporary.c_str());
        fail(path, 0, what + ": " + errno_text(error));
    };
    if (::fchmod(fd.get(), 0600) != 0)
        give_up("cannot make the new file mode 600", errno);
    if (owner && ::fchown(fd.get(), owner->st_uid, owner->st_gid) != 0)
        give_up("cannot give the new file the owner and group of the old one", errno);
    if (const int error = write_all(fd.get(), text))
        give_up("cannot write the new file", error);
    if (::fsync(fd.get()) != 0)
        give_up("cannot write the new file", errno);
    if (const int error = fd.close())
        give_up("cannot write the new file", error);
    if (::rename(temporary.c_str(), path.c_str()) != 0)
        give_up("cannot replace the file", errno);
    fs::path directory = fs::path(path).parent_path();
    if (directory.empty())
        directory = ".";
    // The rename is what makes the new keys last; without a synced directory a crash
    // could bring the old file back. A directory that cannot be opened is not fatal.
    if (UniqueFd dir{::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)})
        ::fsync(dir.get());
}

} // namespace

TicketKey::~TicketKey()
{
    OPENSSL_cleanse(name.data(), name.size());
    OPENSSL_cleanse(hmac.data(), hmac.size());
    OPENSSL_cleanse(aes.data(), aes.size());
}

const TicketKey* TicketKeys::find(const unsigned char* wanted) const
{
    for (const auto& key : keys)
        if (std::memcmp(key.name.data(), wanted, TicketKey::name_size) == 0)
            return &key;
    return nullptr;
}

TicketKeys parse_ticket_keys(std::string_view text, const std::string& source)
{
    TicketKeys out;
    out.source = source;
    unsigned number = 0;
    while (!text.empty()) {
        const auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        ++number;
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);

        std::string_view note;
        if (const auto hash = line.find('#'); hash != std::string_view::npos) {
            note = trim(line.substr(hash + 1));
            line = line.substr(0, hash);
        }
        std::vector<std::string_view> fields;
        std::size_t i = 0;
        while (i < line.size()) {
            while (i < line.size() && blank(line[i]))
                ++i;
            const std::size_t start = i;
            while (i < line.size() && !blank(line[i]))
                ++i;
            if (i > start)
                fields.push_back(line.substr(start, i - start));
        }
        if (fields.empty())
            continue;   // a blank or comment line
        if (fields.size() != 3)
            fail(source, number,
                 "expected 3 fields (NAME HMAC-KEY AES-KEY, in hex), found " + std::to_string(fields.size()));
        TicketKey key;
        key.line = number;
        key.note = std::string(note);
        if (!parse_hex(fields[0], key.name))
            fail(source, number, "the key name is not 32 hex digits (16 bytes)");
        if (!parse_hex(fields[1], key.hmac))
            fail(source, number, "the HMAC key is not 64 hex digits (32 bytes)");
        if (!parse_hex(fields[2], key.aes))
            fail(source, number, "the AES key is not 64 hex digits (32 bytes)");
        for (const auto& earlier : out.keys)
            if (earlier.name == key.name)
                fail(source, number,
                     "the key name is already used on line " + std::to_string(earlier.line) +
                         " (a ticket names the key that decrypts it: names must differ)");
        out.keys.push_back(std::move(key));
    }
    if (out.keys.empty())
        fail(source, 0,
             std::string("the file holds no key (") + format_hint + "; amtp-config --new-ticket-key FILE writes one)");
    return out;
}

TicketKeys read_ticket_keys(const std::string& path)
{
    // O_NONBLOCK: opening a FIFO by mistake must not hang; fstat refuses it next.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd)
        fail(path, 0, "cannot read the ticket key file: " + errno_text(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        fail(path, 0, "cannot read the ticket key file: " + errno_text(errno));
    if (!S_ISREG(st.st_mode))
        fail(path, 0, "the ticket key file is not a regular file");
    if ((st.st_mode & 0077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        fail(path, 0,
             std::string("the ticket key file is open to group or others (mode ") + mode +
                 "): whoever reads it can make tickets that resume as any peer; chmod 600 it");
    }
    if (st.st_size > max_file_size)
        fail(path, 0, "the ticket key file is too large (" + std::to_string(st.st_size) + " bytes)");

    std::string text;
    Wiped wipe{text};
    text.reserve(static_cast<std::size_t>(st.st_size) + 1);  // no reallocation leaves a copy behind
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            const int error = errno;
            OPENSSL_cleanse(buffer, sizeof buffer);
            fail(path, 0, "cannot read the ticket key file: " + errno_text(error));
        }
        if (n == 0)
            break;
        text.append(buffer, static_cast<std::size_t>(n));
        if (text.size() > static_cast<std::size_t>(max_file_size)) {
            OPENSSL_cleanse(buffer, sizeof buffer);
            fail(path, 0, "the ticket key file is too large");
        }
    }
    OPENSSL_cleanse(buffer, sizeof buffer);
    return parse_ticket_keys(text, path);
}

TicketKey new_ticket_key()
{
    TicketKey key;
    if (RAND_bytes(key.name.data(), static_cast<int>(key.name.size())) != 1 ||
        RAND_bytes(key.hmac.data(), static_cast<int>(key.hmac.size())) != 1 ||
        RAND_bytes(key.aes.data(), static_cast<int>(key.aes.size())) != 1)
        throw std::runtime_error("the random generator failed to make a ticket key");
    return key;
}

std::string format_ticket_keys(const std::vector<TicketKey>& keys)
{
    std::string out;
    out.reserve(256 + 200 * keys.size());   // built without reallocating: no stray copies of keys
    out +=
        "# AMTP TLS session ticket keys (tls.ticket-keys), newest first: NAME HMAC-KEY AES-KEY in hex.\n"
        "# The first key encrypts new tickets, the others still decrypt older ones. Secret: mode 600.\n";
    for (const auto& key : keys) {
        append_hex(out, key.name);
        out += ' ';
        append_hex(out, key.hmac);
        out += ' ';
        append_hex(out, key.aes);
        if (!key.note.empty())
            out += "  # " + key.note;
        out += '\n';
    }
    return out;
}

TicketKeyRotation rotate_ticket_keys(const std::string& path, std::size_t keep_old)
{
    TicketKeyRotation result;
    std::string target = path;
    struct stat owner {};
    std::vector<TicketKey> keys;
    keys.push_back(new_ticket_key());
    keys.front().note = "made " + utc_now();

    std::error_code error;
    const bool exists = fs::exists(fs::symlink_status(path, error)) || fs::exists(path, error);
    if (exists) {
        // Through a symbolic link (a shared volume, say), the file it names is replaced.
        target = fs::canonical(path, error).string();
        if (error)
            fail(path, 0, "cannot read the ticket key file: " + error.message());
        const TicketKeys old = read_ticket_keys(target);
        if (::stat(target.c_str(), &owner) != 0)
            fail(target, 0, "cannot read the ticket key file: " + errno_text(errno));
        for (std::size_t i = 0; i < old.keys.size(); ++i) {
            if (i < keep_old) {
                keys.push_back(old.keys[i]);
                ++result.kept;
            } else {
                ++result.dropped;
            }
        }
    } else {
        result.created = true;
    }
    std::string text = format_ticket_keys(keys);
    Wiped wipe{text};
    replace_file(target, text, exists ? &owner : nullptr);
    return result;
}

} // namespace amtp
