// Maildir delivery with durability: write into tmp/, fsync the file, link it into
// new/, fsync the directories; only then is the message acknowledged.
// Layout: <root>/<domain>/<local-part>/{tmp,new,cur}.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace amtp {

struct StoreResult {
    bool ok = false;
    bool temporary = true;     // false only for a recipient that can never be stored
    bool disk_full = false;    // ENOSPC / EDQUOT: reply 452 4.3.1
    std::string path;          // final file name in new/
    std::string error;
};

// Writes the concatenation of `parts` (e.g. trace fields, MPC field, message) as one
// message. The local part is refused when it could escape the directory ("/", "..",
// leading dot, control characters); the domain must be a normalised host name.
StoreResult store_in_maildir(const std::string& root, std::string_view domain, std::string_view local_part,
                             const std::vector<std::string_view>& parts);

// Whether a (case-folded) local part can be one Maildir directory name: not "/",
// "..", a leading dot or control characters, at most 255 octets.
bool valid_maildir_local_part(std::string_view local_part);

// Whether <root>/<domain>/<local-part> is an existing mailbox directory, with the same
// case folding and name rules as store_in_maildir. A missing root (an unmounted mail
// volume) or something other than a directory under the mailbox's name (delivery
// would refuse a symbolic link) is lookup_failed, with `error` saying which.
enum class MailboxState { exists, missing, invalid_name, lookup_failed };
struct MailboxLookup {
    MailboxState state = MailboxState::missing;
    std::string error;
};
MailboxLookup find_maildir(const std::string& root, std::string_view domain, std::string_view local_part);

// A unique file name "time.M<usec>P<pid>Q<counter>.<host>" (the Maildir convention).
std::string maildir_unique_name(std::string_view hostname);

} // namespace amtp
