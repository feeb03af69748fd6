#include "amtp/queue.hpp"

#include "amtp/errors.hpp"
#include "amtp/log.hpp"
#include "amtp/trace_headers.hpp"
#include "unique_fd.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <system_error>

namespace amtp {

namespace {

constexpr std::string_view envelope_suffix = ".env";
constexpr std::string_view message_suffix = ".msg";
constexpr std::string_view temporary_prefix = "tmp.";

const char* status_name(QueuedStatus s)
{
    switch (s) {
    case QueuedStatus::pending: return "pending";
    case QueuedStatus::delivered: return "delivered";
    case QueuedStatus::failed: return "failed";
    case QueuedStatus::bounced: return "bounced";
    }
    return "pending";
}

std::optional<QueuedStatus> status_from(std::string_view s)
{
    if (s == "pending")
        return QueuedStatus::pending;
    if (s == "delivered")
        return QueuedStatus::delivered;
    if (s == "failed")
        return QueuedStatus::failed;
    if (s == "bounced")
        return QueuedStatus::bounced;
    return std::nullopt;
}

template <typename T>
bool number(std::string_view s, T& out)
{
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

QueueResult fail(std::string what, int err)
{
    QueueResult r;
    r.disk_full = err == ENOSPC || err == EDQUOT;
    r.error = std::move(what) + ": " + std::generic_category().message(err);
    return r;
}

// Ids are file names: letters and digits only, so no id can name another file.
bool valid_id(std::string_view id)
{
    return !id.empty() && id.size() <= 64 &&
           std::all_of(id.begin(), id.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); });
}

int fsync_directory(const std::string& dir)
{
    UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d)
        return errno;
    return ::fsync(d.get()) == 0 ? 0 : errno;
}

// Writes `parts` to dir/tmp.<name>, fsyncs it and renames it to dir/<name>; the
// directory is fsync'ed by the caller once all its changes are made.
int write_and_rename(const std::string& dir, const std::string& name, const std::vector<std::string_view>& parts)
{
    const std::string tmp = dir + "/" + std::string(temporary_prefix) + name;
    UniqueFd f(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!f)
        return errno;
    int err = 0;
    for (const auto part : parts)
        if (!err)
            err = write_all(f.get(), part);
    if (!err && ::fsync(f.get()) != 0)
        err = errno;
    const int close_err = f.close();
    if (!err)
        err = close_err;
    if (!err && ::rename(tmp.c_str(), (dir + "/" + name).c_str()) != 0)
        err = errno;
    if (err)
        ::unlink(tmp.c_str());
    return err;
}

// Envelope fields are space-separated on one line, yet an address may hold anything a
// quoted local part allows ("a b"@x), UTF-8 included. Each field is written with every
// byte outside printable ASCII, the space and "%" as %HH, so any byte string comes back
// exactly.
std::string encode_field(std::string_view raw)
{
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(raw.size());
    for (const char ch : raw) {
        const auto c = static_cast<unsigned char>(ch);
        if (c > 0x20 && c < 0x7f && c != '%') {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
    return out;
}

int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

// nullopt for anything encode_field cannot have written.
std::optional<std::string> decode_field(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '%') {
            if (i + 2 >= text.size())
                return std::nullopt;
            const int hi = hex_value(text[i + 1]);
            const int lo = hex_value(text[i + 2]);
            if (hi < 0 || lo < 0)
                return std::nullopt;
            out += static_cast<char>(hi << 4 | lo);
            i += 2;
        } else if (c > 0x20 && c < 0x7f) {
            out += text[i];
        } else {
            return std::nullopt;
        }
    }
    return out;
}

bool ends_with(std::string_view s, std::string_view suffix)
{
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

} // namespace

bool QueueEntry::finished() const
{
    return std::none_of(recipients.begin(), recipients.end(),
                        [](const QueuedRecipient& r) {
                            return r.status == QueuedStatus::pending || r.status == QueuedStatus::failed;
                        });
}

std::string serialize_entry(const QueueEntry& e)
{
    std::ostringstream o;
    o << "amtp-queue 2\n";
    o << "id " << e.id << "\n";
    o << "created " << e.created << "\n";
    o << "next " << e.next_attempt << "\n";
    o << "attempts " << e.attempts << "\n";
    o << "sender " << encode_field(e.sender) << "\n";
    o << "mpc " << e.mpc.str() << "\n";
    // The reply stays printable (it is shown and quoted in bounces as one line).
    for (const auto& r : e.recipients)
        o << "rcpt " << status_name(r.status) << " " << encode_field(r.address) << " "
          << encode_field(printable(r.last_reply)) << "\n";
    return o.str();
}

std::optional<QueueEntry> parse_entry(std::string_view text)
{
    QueueEntry e;
    int version = 0;
    bool have_mpc = false;
    // Version 1 wrote the fields as they were (printable), split at spaces: read back
    // as it was written, so entries queued before an upgrade are still delivered.
    const auto field = [&version](std::string_view raw) -> std::optional<std::string> {
        return version == 1 ? std::optional<std::string>(raw) : decode_field(raw);
    };
    while (!text.empty()) {
        const auto nl = text.find('\n');
        if (nl == std::string_view::npos)
            return std::nullopt; // a torn file never ends without its newline
        const std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl + 1);
        const auto sp = line.find(' ');
        const std::string_view key = line.substr(0, sp);
        const std::string_view value = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
        if (version == 0) {
            if (line == "amtp-queue 1")
                version = 1;
            else if (line == "amtp-queue 2")
                version = 2;
            else
                return std::nullopt;
        } else if (key == "id") {
            if (!valid_id(value))
                return std::nullopt;
            e.id = std::string(value);
        } else if (key == "created") {
            if (!number(value, e.created))
                return std::nullopt;
        } else if (key == "next") {
            if (!number(value, e.next_attempt))
                return std::nullopt;
        } else if (key == "attempts") {
            if (!number(value, e.attempts))
                return std::nullopt;
        } else if (key == "sender") {
            auto sender = field(value);
            if (!sender)
                return std::nullopt;
            e.sender = std::move(*sender);
        } else if (key == "mpc") {
            auto parsed = parse_mpc(value);
            if (!parsed.value)
                return std::nullopt;
            e.mpc = *parsed.value;
            have_mpc = true;
        } else if (key == "rcpt") {
            const auto s1 = value.find(' ');
            if (s1 == std::string_view::npos)
                return std::nullopt;
            const auto status = status_from(value.substr(0, s1));
            const std::string_view rest = value.substr(s1 + 1);
            const auto s2 = rest.find(' ');
            if (version == 2 && s2 == std::string_view::npos)
                return std::nullopt;
            const auto address = field(rest.substr(0, s2));
            const auto reply = field(s2 == std::string_view::npos ? std::string_view{} : rest.substr(s2 + 1));
            if (!status || !address || !reply || address->empty())
                return std::nullopt;
            QueuedRecipient r;
            r.status = *status;
            r.address = std::move(*address);
            r.last_reply = std::move(*reply);
            e.recipients.push_back(std::move(r));
        } else {
            return std::nullopt;
        }
    }
    if (version == 0 || e.id.empty() || !have_mpc || e.recipients.empty())
        return std::nullopt;
    return e;
}

Queue::Queue(std::string directory) : dir_(std::move(directory))
{
    if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
        throw ConfigError(dir_, 0, "queue.directory", "cannot create: " + std::generic_category().message(errno));
    struct stat st {};
    if (::stat(dir_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw ConfigError(dir_, 0, "queue.directory", "not a directory");
}

std::string Queue::new_id() const
{
    // Time first (sorts by age in a listing), then randomness against collisions
    // between processes.
    static constexpr char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    std::random_device rd;
    std::string id;
    auto t = static_cast<unsigned long long>(std::time(nullptr));
    std::string stamp;
    do {
        stamp.insert(stamp.begin(), digits[t % 36]);
        t /= 36;
    } while (t);
    id = stamp;
    for (int i = 0; i < 10; ++i)
        id += digits[rd() % 36];
    return id;
}

QueueResult Queue::enqueue(const QueueEntry& entry, const std::vector<std::string_view>& message_parts)
{
    if (!valid_id(entry.id))
        return {false, false, "invalid queue id"};
    if (int err = write_and_rename(dir_, entry.id + std::string(message_suffix), message_parts))
        return fail("queue message " + entry.id, err);
    const std::string env = serialize_entry(entry);
    if (int err = write_and_rename(dir_, entry.id + std::string(envelope_suffix), {env})) {
        ::unlink((dir_ + "/" + entry.id + std::string(message_suffix)).c_str());
        return fail("queue envelope " + entry.id, err);
    }
    if (int err = fsync_directory(dir_))
        return fail("queue directory", err);
    return {true, false, {}};
}

QueueResult Queue::update(const QueueEntry& entry)
{
    if (!valid_id(entry.id))
        return {false, false, "invalid queue id"};
    const std::string env = serialize_entry(entry);
    if (int err = write_and_rename(dir_, entry.id + std::string(envelope_suffix), {env}))
        return fail("queue envelope " + entry.id, err);
    if (int err = fsync_directory(dir_))
        return fail("queue directory", err);
    return {true, false, {}};
}

QueueResult Queue::remove(const std::string& id)
{
    if (!valid_id(id))
        return {false, false, "invalid queue id"};
    if (::unlink((dir_ + "/" + id + std::string(envelope_suffix)).c_str()) != 0 && errno != ENOENT)
        return fail("remove envelope " + id, errno);
    if (int err = fsync_directory(dir_))
        return fail("queue directory", err);
    ::unlink((dir_ + "/" + id + std::string(message_suffix)).c_str());
    return {true, false, {}};
}

std::optional<std::string> Queue::read_message(const std::string& id) const
{
    if (!valid_id(id))
        return std::nullopt;
    std::ifstream in(dir_ + "/" + id + std::string(message_suffix), std::ios::binary);
    if (!in)
        return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<QueueEntry> Queue::load_all(std::chrono::seconds stale_after)
{
    const std::time_t now = std::time(nullptr);
    auto stale = [&](const std::string& name) {
        struct stat st {};
        return ::stat((dir_ + "/" + name).c_str(), &st) == 0 &&
               now - st.st_mtime >= static_cast<std::time_t>(stale_after.count());
    };
    std::vector<std::string> names;
    if (DIR* d = ::opendir(dir_.c_str())) {
        while (const dirent* de = ::readdir(d))
            names.emplace_back(de->d_name);
        ::closedir(d);
    }
    std::vector<QueueEntry> out;
    std::vector<std::string> messages;
    for (const auto& n : names) {
        if (n.rfind(temporary_prefix, 0) == 0) {
            if (stale(n))
                ::unlink((dir_ + "/" + n).c_str()); // a write that never completed
        } else if (ends_with(n, envelope_suffix)) {
            std::ifstream in(dir_ + "/" + n, std::ios::binary);
            std::ostringstream ss;
            ss << in.rdbuf();
            auto e = parse_entry(ss.str());
            if (e && e->id + std::string(envelope_suffix) == n)
                out.push_back(std::move(*e));
        } else if (ends_with(n, message_suffix)) {
            messages.push_back(n.substr(0, n.size() - message_suffix.size()));
        }
    }
    // A message without an envelope was never acknowledged (or was already finished).
    for (const auto& id : messages) {
        const bool used = std::any_of(out.begin(), out.end(), [&](const QueueEntry& e) { return e.id == id; });
        if (!used && stale(id + std::string(message_suffix)))
            ::unlink((dir_ + "/" + id + std::string(message_suffix)).c_str());
    }
    std::sort(out.begin(), out.end(), [](const QueueEntry& a, const QueueEntry& b) { return a.created < b.created; });
    return out;
}

std::time_t next_attempt_time(std::time_t now, unsigned attempts, const std::vector<std::chrono::seconds>& schedule)
{
    if (schedule.empty())
        return now + 300;
    const std::size_t i = attempts == 0 ? 0 : std::min<std::size_t>(attempts - 1, schedule.size() - 1);
    return now + static_cast<std::time_t>(schedule[i].count());
}

bool queue_expired(std::time_t created, std::time_t now, std::chrono::seconds max_age)
{
    return now - created > static_cast<std::time_t>(max_age.count());
}

std::string bounce_message(const std::string& hostname, const QueueEntry& entry, std::string_view original,
                           std::time_t now)
{
    const std::string boundary = entry.id + "/" + hostname;
    std::string m;
    m += "From: Mail Delivery System <MAILER-DAEMON@" + hostname + ">\r\n";
    m += "To: <" + printable(entry.sender) + ">\r\n";
    m += "Subject: Undelivered Mail Returned to Sender\r\n";
    m += "Date: " + rfc5322_date(now) + "\r\n";
    m += "Auto-Submitted: auto-replied\r\n";
    m += "MIME-Version: 1.0\r\n";
    m += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" + boundary + "\"\r\n";
    m += "\r\n--" + boundary + "\r\n";
    m += "Content-Type: text/plain; charset=us-ascii\r\n\r\n";
    m += "This is the AMTP mail system at " + hostname + ".\r\n\r\n";
    m += "Your message could not be delivered to the following recipients:\r\n\r\n";
    for (const auto& r : entry.recipients)
        if (r.status == QueuedStatus::failed)
            m += "<" + printable(r.address) + ">: " + printable(r.last_reply) + "\r\n";
    m += "\r\n--" + boundary + "\r\n";
    m += "Content-Type: message/delivery-status\r\n\r\n";
    m += "Reporting-MTA: dns; " + hostname + "\r\n\r\n";
    for (const auto& r : entry.recipients) {
        if (r.status != QueuedStatus::failed)
            continue;
        m += "Final-Recipient: rfc822; " + printable(r.address) + "\r\n";
        m += "Action: failed\r\n";
        // The enhanced status code of the reply when it has one, else a generic 5.0.0.
        std::string status = "5.0.0";
        const auto& t = r.last_reply;
        if (t.size() >= 9 && t[3] == ' ' && t[5] == '.' && (t[4] == '5' || t[4] == '4'))
            status = "5" + t.substr(5, t.find(' ', 4) - 5);
        m += "Status: " + status + "\r\n";
        m += "Diagnostic-Code: smtp; " + printable(r.last_reply) + "\r\n\r\n";
    }
    m += "--" + boundary + "\r\n";
    m += "Content-Type: text/rfc822-headers\r\n\r\n";
    const auto header_end = original.find("\r\n\r\n");
    m += std::string(original.substr(0, header_end == std::string_view::npos ? original.size() : header_end + 2));
    m += "\r\n--" + boundary + "--\r\n";
    return m;
}

} // namespace amtp
