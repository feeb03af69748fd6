// Maildir delivery (D. J. Bernstein's layout) with the durability an SMTP "250" after
// DATA promises: the file is complete and fsync'ed under tmp/, linked into new/, and
// the directory entries are fsync'ed before we report success.
//
// Directories are walked with openat()/mkdirat() relative to descriptors opened with
// O_NOFOLLOW, so a symbolic link planted below the root cannot redirect a delivery,
// and each fsync goes to exactly the directory that was changed.
#include "amtp/maildir.hpp"

#include "ascii.hpp"
#include "unique_fd.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <system_error>
#include <utility>

namespace amtp {

namespace {

using ascii::lower;

std::string errno_text(int err)
{
    return std::generic_category().message(err);
}

StoreResult failure(std::string what, int err)
{
    StoreResult r;
    r.ok = false;
    r.temporary = true;
    r.disk_full = err == ENOSPC || err == EDQUOT;
    r.error = std::move(what) + ": " + errno_text(err);
    return r;
}

StoreResult refused(std::string what)
{
    StoreResult r;
    r.ok = false;
    r.temporary = false;
    r.error = std::move(what);
    return r;
}

// Domains compare case-insensitively everywhere (DNS), and so do mailboxes of
// delivery.local-domain on this system: "Bob" and "bob" are one mailbox. Folding
// (ASCII only) means every spelling lands in the same directory.
std::string folded(std::string_view s)
{
    std::string out;
    for (const char c : s)
        out += lower(c);
    return out;
}

// Lower-case LDH labels separated by single dots, at most 253 octets: a normalised
// host name, which can neither be empty nor contain "/" or "..".
bool valid_domain(std::string_view d)
{
    if (d.empty() || d.size() > 253)
        return false;
    std::size_t label = 0;
    for (std::size_t i = 0; i < d.size(); ++i) {
        const char c = d[i];
        if (c == '.') {
            if (label == 0 || d[i - 1] == '-')
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
            if ((label == 0 && c == '-') || ++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0 && d.back() != '-';
}

// Opens (creating when missing) directory `name` below `parent`. A newly created
// directory is only durable once its parent's entry is, hence the fsync of the parent.
int open_subdir(int parent, const std::string& name, UniqueFd& out)
{
    if (::mkdirat(parent, name.c_str(), 0700) == 0) {
        if (::fsync(parent) != 0)
            return errno;
    } else if (errno != EEXIST) {
        return errno;
    }
    const int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno;
    out = UniqueFd(fd);
    return 0;
}

std::string local_hostname()
{
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0')
        return "localhost";
    return buf;
}

} // namespace

std::string maildir_unique_name(std::string_view hostname)
{
    // The one process-wide counter the core keeps: it separates deliveries made by
    // different sessions of this process within the same microsecond, which the time
    // and pid alone cannot.
    static std::atomic<unsigned long long> counter{0};
    const unsigned long long q = counter.fetch_add(1, std::memory_order_relaxed) + 1;

    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);

    // Maildir writes "/" and ":" in the host name as octal escapes ("/" would make a
    // path, ":" starts the info part in cur/); other unprintable bytes get the same
    // treatment so the name stays one harmless file name.
    std::string host;
    for (const char ch : hostname.substr(0, 64)) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '/' || c == ':' || c == '\\' || c <= 0x20 || c >= 0x7f) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\%03o", c);
            host += esc;
        } else {
            host += ch;
        }
    }
    if (host.empty())
        host = "localhost";

    char head[96];
    std::snprintf(head, sizeof head, "%lld.M%ldP%ldQ%llu.", static_cast<long long>(now.tv_sec),
                  static_cast<long>(now.tv_nsec / 1000), static_cast<long>(::getpid()), q);
    return head + host;
}

// A local part becomes one directory name: it must stay one (no "/"), must not be
// "." or ".." or hidden (leading "."), and must not carry control characters that
// would make the file system confusing to operate. 255 is NAME_MAX on every Linux
// file system we deliver to; a longer name could never be stored.
bool valid_maildir_local_part(std::string_view l)
{
    if (l.empty() || l.size() > 255 || l.front() == '.' || l.find("..") != std::string_view::npos)
        return false;
    for (const char ch : l) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '/' || c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

MailboxLookup find_maildir(const std::string& root, std::string_view domain, std::string_view local_part)
{
    const std::string dom = folded(domain);
    const std::string local = folded(local_part);
    MailboxLookup out;
    if (!valid_domain(dom) || !valid_maildir_local_part(local)) {
        out.state = MailboxState::invalid_name;
        return out;
    }
    // A missing root is an unmounted mail volume, not an unknown recipient: temporary.
    struct stat st{};
    if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        out.state = MailboxState::lookup_failed;
        out.error = "maildir root " + root + " is not available";
        return out;
    }
    const std::string box = root + "/" + dom + "/" + local;
    if (::lstat(box.c_str(), &st) != 0) {
        const int err = errno;
        if (err == ENOENT || err == ENOTDIR) {
            out.state = MailboxState::missing;
        } else {
            out.state = MailboxState::lookup_failed;
            out.error = "stat " + box + ": " + errno_text(err);
        }
        return out;
    }
    if (!S_ISDIR(st.st_mode)) {
        // Something else holds the mailbox's name (a file, a symbolic link): a broken
        // mailbox for the operator to repair, not an unknown recipient.
        out.state = MailboxState::lookup_failed;
        out.error = box + " is not a directory";
        return out;
    }
    out.state = MailboxState::exists;
    return out;
}

StoreResult store_in_maildir(const std::string& root, std::string_view domain, std::string_view local_part,
                             const std::vector<std::string_view>& parts)
{
    const std::string dom = folded(domain);
    const std::string local = folded(local_part);
    if (!valid_domain(dom))
        return refused("invalid mail domain for delivery");
    if (!valid_maildir_local_part(local))
        return refused("local part cannot be a mailbox name");

    // The root is configuration and must exist: creating it would hide an unmounted
    // mail volume by filling the file system beneath it.
    UniqueFd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_fd)
        return failure("open " + root, errno);

    const std::string base = root + "/" + dom + "/" + local;
    UniqueFd dom_fd, box_fd, tmp_fd, new_fd, cur_fd;
    if (int e = open_subdir(root_fd.get(), dom, dom_fd))
        return failure("mkdir " + root + "/" + dom, e);
    if (int e = open_subdir(dom_fd.get(), local, box_fd))
        return failure("mkdir " + base, e);
    if (int e = open_subdir(box_fd.get(), "tmp", tmp_fd))
        return failure("mkdir " + base + "/tmp", e);
    if (int e = open_subdir(box_fd.get(), "new", new_fd))
        return failure("mkdir " + base + "/new", e);
    if (int e = open_subdir(box_fd.get(), "cur", cur_fd))
        return failure("mkdir " + base + "/cur", e);

    const std::string host = local_hostname();
    std::string name;
    UniqueFd file;
    // O_EXCL guarantees we never write into someone else's file; a clash (a clock
    // stepping back to the same microsecond) just takes the next counter value.
    for (int attempt = 0; attempt < 5 && !file; ++attempt) {
        name = maildir_unique_name(host);
        const int fd = ::openat(tmp_fd.get(), name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
                                0600);
        if (fd >= 0)
            file = UniqueFd(fd);
        else if (errno != EEXIST)
            return failure("create " + base + "/tmp/" + name, errno);
    }
    if (!file)
        return failure("create " + base + "/tmp/" + name, EEXIST);

    bool linked = false;
    // Undoes what exists of this delivery, so that a failure leaves no partial or
    // unacknowledged message behind (the client will retry; a copy in new/ would be
    // a duplicate).
    auto fail = [&](const std::string& what, int err) {
        file.reset();
        ::unlinkat(tmp_fd.get(), name.c_str(), 0);
        if (linked)
            ::unlinkat(new_fd.get(), name.c_str(), 0);
        return failure(what, err);
    };

    for (const auto& part : parts)
        if (int e = write_all(file.get(), part))
            return fail("write " + base + "/tmp/" + name, e);
    if (::fsync(file.get()) != 0)
        return fail("fsync " + base + "/tmp/" + name, errno);
    if (int e = file.close())
        return fail("close " + base + "/tmp/" + name, e);

    // link + unlink rather than rename: link fails instead of replacing an existing
    // file in new/, so two deliveries can never overwrite each other.
    if (::linkat(tmp_fd.get(), name.c_str(), new_fd.get(), name.c_str(), 0) != 0)
        return fail("link " + base + "/new/" + name, errno);
    linked = true;
    if (::fsync(new_fd.get()) != 0)
        return fail("fsync " + base + "/new", errno);
    // From here the message is safe in new/; a stale tmp/ entry is only untidy, and
    // Maildir readers clean tmp/ of old files anyway, so the unlink needs no fsync.
    ::unlinkat(tmp_fd.get(), name.c_str(), 0);

    StoreResult r;
    r.ok = true;
    r.path = base + "/new/" + name;
    return r;
}

} // namespace amtp
