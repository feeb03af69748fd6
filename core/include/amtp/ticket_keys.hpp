// TLS session ticket keys shared by the hosts that serve one domain (tls.ticket-keys),
// so that a session made with one host resumes with another, and keys survive a
// reload. Whoever holds these keys can make a ticket that resumes as any identity
// (the ticket carries the identity verified on the full handshake): they are as
// secret as tls.key, and the file is refused when group or others may open it.
//
// The file, one key a line, newest first:
//
//   # comment lines and blank lines are ignored
//   NAME HMAC-KEY AES-KEY   # a comment after a key stays with it ("made <time>")
//
// in hexadecimal (either case): NAME 16 bytes (32 digits), the name a ticket carries
// to say which key made it; HMAC-KEY 32 bytes (64 digits), for HMAC-SHA256 over the
// ticket; AES-KEY 32 bytes (64 digits), for AES-256-CBC. The first key encrypts new
// tickets; every key decrypts the tickets that carry its name, and a ticket made with
// an older one is renewed on use. Names are unique in a file.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace amtp {

struct TicketKey {
    static constexpr std::size_t name_size = 16;
    static constexpr std::size_t hmac_size = 32;
    static constexpr std::size_t aes_size = 32;

    std::array<unsigned char, name_size> name{};
    std::array<unsigned char, hmac_size> hmac{};
    std::array<unsigned char, aes_size> aes{};
    unsigned line = 0;   // where it was read, 0 when made here
    std::string note;    // the comment after it on its line, without "#", kept by rotations

    TicketKey() = default;
    TicketKey(const TicketKey&) = default;
    TicketKey& operator=(const TicketKey&) = default;
    ~TicketKey();        // the key material is wiped
};

struct TicketKeys {
    std::string source;              // the file, for messages
    std::vector<TicketKey> keys;     // newest first; never empty once read

    // The key whose name a ticket carries, or null.
    const TicketKey* find(const unsigned char* name) const;
    bool newest(const TicketKey& key) const { return !keys.empty() && &key == &keys.front(); }
};

// The setting's name, the key of every ConfigError about the file.
inline constexpr const char* ticket_keys_setting = "tls.ticket-keys";

// Parses the text of a key file. Throws ConfigError(source, line, "tls.ticket-keys",
// message) for a malformed line, a repeated name or a file without keys. Messages
// never quote the file's text: a line that fails to parse may still be a key.
TicketKeys parse_ticket_keys(std::string_view text, const std::string& source);

// Reads and parses `path`. Refuses (ConfigError) a file that cannot be read, is not a
// regular file, or whose mode gives group or others any access (as ssh does for
// private keys).
TicketKeys read_ticket_keys(const std::string& path);

// A new key from the system's random generator (name included). Throws
// std::runtime_error when the generator fails.
TicketKey new_ticket_key();

// The file's text for `keys`, newest first, after a comment saying what it is.
std::string format_ticket_keys(const std::vector<TicketKey>& keys);

// A rotation (amtp-config --new-ticket-key FILE): a new key on top of the keys `path`
// holds, of which the newest `keep_old` stay (they decrypt the tickets made before);
// the file is replaced atomically, mode 600, keeping its owner and group. A file that
// does not exist is created with the new key alone. Throws ConfigError when the file
// is there but unusable (read_ticket_keys) or cannot be written.
struct TicketKeyRotation {
    bool created = false;            // there was no file
    std::size_t kept = 0;            // older keys still in the file
    std::size_t dropped = 0;         // older keys removed
};
TicketKeyRotation rotate_ticket_keys(const std::string& path, std::size_t keep_old = 1);

} // namespace amtp
