#include <catch2/catch.hpp>

#include "amtp/maildir.hpp"
#include "support/test_paths.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace amtp;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> entries(const fs::path& dir)
{
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir))
        names.push_back(e.path().filename().string());
    return names;
}

unsigned mode_of(const fs::path& p)
{
    struct stat st{};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

// A tmpfs mounted for one test and detached when the test ends, however it ends.
class TmpfsMount {
public:
    TmpfsMount(const std::string& dir, unsigned long flags, const char* options) : dir_(dir)
    {
        mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", flags, options) == 0;
        error_ = mounted_ ? 0 : errno;
    }
    ~TmpfsMount()
    {
        if (mounted_)
            ::umount2(dir_.c_str(), MNT_DETACH);
    }
    TmpfsMount(const TmpfsMount&) = delete;
    TmpfsMount& operator=(const TmpfsMount&) = delete;
    bool mounted() const { return mounted_; }
    std::string error() const { return std::strerror(error_); }

private:
    std::string dir_;
    bool mounted_ = false;
    int error_ = 0;
};

const std::string message = "Received: from mx.a.test\r\n\tby mx.b.test; Mon, 23 Nov 2026 18:16:33 +0000\r\n";

} // namespace

TEST_CASE("A message lands in new/ with exactly the bytes given")
{
    const std::string root = test::fresh_dir("maildir-store");
    const std::string binary("x\0y\r\n\xff", 6);
    const std::string body = "Subject: hi\r\n\r\nbody\r\n";
    const auto r = store_in_maildir(root, "b.test", "bob", {message, "MPC: per/individual\r\n", "", binary, body});
    INFO(r.error);
    REQUIRE(r.ok);
    CHECK(r.error.empty());
    const fs::path box = fs::path(root) / "b.test" / "bob";
    CHECK(fs::path(r.path).parent_path() == box / "new");
    CHECK(test::read_file(r.path) == message + "MPC: per/individual\r\n" + binary + body);
    CHECK(entries(box / "new").size() == 1);
    CHECK(entries(box / "tmp").empty());
    CHECK(entries(box / "cur").empty());
    CHECK(mode_of(r.path) == 0600);
    for (const char* d : {"tmp", "new", "cur"})
        CHECK(mode_of(box / d) == 0700);
    CHECK(mode_of(box) == 0700);
    CHECK(mode_of(box.parent_path()) == 0700);
}

TEST_CASE("A second message goes into the existing Maildir beside the first")
{
    const std::string root = test::fresh_dir("maildir-second");
    const auto a = store_in_maildir(root, "b.test", "bob", {"first\r\n"});
    const auto b = store_in_maildir(root, "b.test", "bob", {"second\r\n"});
    REQUIRE(a.ok);
    REQUIRE(b.ok);
    CHECK(a.path != b.path);
    CHECK(test::read_file(a.path) == "first\r\n");
    CHECK(test::read_file(b.path) == "second\r\n");
}

TEST_CASE("Mailboxes are case-insensitive: local part and domain are lower-cased")
{
    const std::string root = test::fresh_dir("maildir-case");
    const auto r = store_in_maildir(root, "B.Test", "Bob.Smith", {message});
    REQUIRE(r.ok);
    CHECK(fs::is_directory(fs::path(root) / "b.test" / "bob.smith" / "new"));
    CHECK(entries(root) == std::vector<std::string>{"b.test"});
}

TEST_CASE("A large message in many parts is written completely")
{
    const std::string root = test::fresh_dir("maildir-large");
    std::vector<std::string> chunks;
    std::string expected;
    for (int i = 0; i < 64; ++i) {
        chunks.push_back(std::string(100000 + i, static_cast<char>('a' + i % 26)));
        expected += chunks.back();
    }
    const std::vector<std::string_view> parts(chunks.begin(), chunks.end());
    const auto r = store_in_maildir(root, "b.test", "bob", parts);
    REQUIRE(r.ok);
    CHECK(test::read_file(r.path) == expected);
}

TEST_CASE("Concurrent deliveries to a new mailbox all succeed with distinct files")
{
    const std::string root = test::fresh_dir("maildir-concurrent");
    constexpr int threads = 8;
    constexpr int each = 25;
    std::vector<std::vector<StoreResult>> results(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
        workers.emplace_back([&, t] {
            for (int i = 0; i < each; ++i)
                results[t].push_back(store_in_maildir(root, "b.test", "bob", {std::to_string(t * each + i)}));
        });
    for (auto& w : workers)
        w.join();
    std::set<std::string> paths;
    for (const auto& rs : results)
        for (const auto& r : rs) {
            CHECK(r.ok);
            paths.insert(r.path);
        }
    CHECK(paths.size() == threads * each);
    CHECK(entries(fs::path(root) / "b.test" / "bob" / "new").size() == threads * each);
    CHECK(entries(fs::path(root) / "b.test" / "bob" / "tmp").empty());
}

TEST_CASE("Maildir unique names follow the convention and differ over 1000 calls")
{
    std::set<std::string> names;
    const std::regex shape(R"(\d+\.M\d+P\d+Q\d+\.mx\.b\.test)");
    for (int i = 0; i < 1000; ++i) {
        const std::string n = maildir_unique_name("mx.b.test");
        CHECK(std::regex_match(n, shape));
        names.insert(n);
    }
    CHECK(names.size() == 1000);
}

TEST_CASE("Maildir unique names escape slash and colon in the host name")
{
    const std::string n = maildir_unique_name("a/b:c");
    CHECK(n.size() > 11);
    CHECK(n.compare(n.size() - 11, 11, "a\\057b\\072c") == 0);
    CHECK(n.find('/') == std::string::npos);
    CHECK(n.find(':') == std::string::npos);
    const std::string empty = maildir_unique_name("");
    CHECK(empty.compare(empty.size() - 10, 10, ".localhost") == 0);
}

TEST_CASE("Local parts that could escape the mailbox are refused permanently")
{
    const std::string outer = test::fresh_dir("maildir-bad-local");
    const std::string root = outer + "/root";
    fs::create_directory(root);
    const std::vector<std::string> nasty = {
        "",          "/",          ".",           "..",         "../x",       "../../etc", ".hidden",
        "a/b",       "a..b",       "bob/",        "/etc",       "x/../../y",  std::string("a\0b", 3),
        "a\nb",      "a\r",        "tab\tbed",    "\x1b[31m",   "del\x7f",    std::string(256, 'a'),
    };
    for (const auto& local : nasty) {
        INFO("local part: " << local);
        const auto r = store_in_maildir(root, "b.test", local, {message});
        CHECK_FALSE(r.ok);
        CHECK_FALSE(r.temporary);
        CHECK_FALSE(r.disk_full);
        CHECK_FALSE(r.error.empty());
        CHECK(r.path.empty());
    }
    CHECK(entries(root).empty());
    CHECK(entries(outer) == std::vector<std::string>{"root"});
}

TEST_CASE("Domains that are not normalised host names are refused permanently")
{
    const std::string outer = test::fresh_dir("maildir-bad-domain");
    const std::string root = outer + "/root";
    fs::create_directory(root);
    for (const std::string domain : {"", ".", "..", "../etc", "a/b", "b.test.", ".b.test", "b..test", "-b.test",
                                     "b-.test", "b_x.test", "b test", "b.test\n", "b\xc3\xa9.test"}) {
        INFO("domain: " << domain);
        const auto r = store_in_maildir(root, domain, "bob", {message});
        CHECK_FALSE(r.ok);
        CHECK_FALSE(r.temporary);
    }
    CHECK(entries(root).empty());
    CHECK(entries(outer) == std::vector<std::string>{"root"});
}

TEST_CASE("A missing Maildir root is a temporary failure and is not created")
{
    const std::string outer = test::fresh_dir("maildir-no-root");
    const std::string root = outer + "/absent";
    const auto r = store_in_maildir(root, "b.test", "bob", {message});
    CHECK_FALSE(r.ok);
    CHECK(r.temporary);
    CHECK_FALSE(r.disk_full);
    CHECK_FALSE(fs::exists(root));
}

TEST_CASE("A read-only Maildir root is a temporary failure")
{
    const std::string root = test::fresh_dir("maildir-readonly");
    std::optional<TmpfsMount> mount;
    if (::geteuid() == 0) {
        // root ignores permission bits, so only a read-only file system is read-only.
        mount.emplace(root, MS_RDONLY, "size=64k");
        if (!mount->mounted())
            FAIL("cannot mount a read-only tmpfs on " << root << ": " << mount->error());
    } else {
        fs::permissions(root, fs::perms::owner_read | fs::perms::owner_exec);
    }
    const auto r = store_in_maildir(root, "b.test", "bob", {message});
    INFO(r.error);
    CHECK_FALSE(r.ok);
    CHECK(r.temporary);
    CHECK_FALSE(r.disk_full);
    CHECK_FALSE(r.error.empty());
    CHECK(entries(root).empty());
    if (!mount)
        fs::permissions(root, fs::perms::owner_all);
}

namespace {

// What one attempt on a full disk showed (filled in wherever the tmpfs was mounted: in
// this process, or in a child in its own user and mount namespaces).
struct FullDiskOutcome {
    std::string setup_error;   // not empty: no small tmpfs could be mounted
    bool ok = true;
    bool temporary = false;
    bool disk_full = false;
    std::string error;
    bool tmp_empty = false;
    bool new_empty = false;
    bool small_ok = false;     // a small message still fits once the big one failed
};

FullDiskOutcome fill_a_small_tmpfs(const std::string& root)
{
    FullDiskOutcome out;
    TmpfsMount mount(root, 0, "size=64k,mode=0700");
    if (!mount.mounted()) {
        out.setup_error = "cannot mount a 64k tmpfs on " + root + ": " + mount.error();
        return out;
    }
    const std::string big(1 << 20, 'x');
    const auto r = store_in_maildir(root, "b.test", "bob", {message, big});
    out.ok = r.ok;
    out.temporary = r.temporary;
    out.disk_full = r.disk_full;
    out.error = r.error;
    const fs::path box = fs::path(root) / "b.test" / "bob";
    std::error_code ec;
    out.tmp_empty = fs::is_empty(box / "tmp", ec) && !ec;
    out.new_empty = fs::is_empty(box / "new", ec) && !ec;
    out.small_ok = store_in_maildir(root, "b.test", "bob", {message}).ok;
    return out;
}

bool write_proc_file(const char* path, const std::string& text)
{
    const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    const bool done = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return done;
}

// Not root: a child process takes a user namespace (where it is root) and a mount
// namespace of its own, mounts the tmpfs there and reports through a pipe. Nothing it
// mounts is seen outside it.
FullDiskOutcome fill_a_small_tmpfs_in_a_namespace(const std::string& root)
{
    FullDiskOutcome out;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        out.setup_error = std::string("pipe: ") + std::strerror(errno);
        return out;
    }
    const uid_t uid = ::geteuid();
    const gid_t gid = ::getegid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        out.setup_error = std::string("fork: ") + std::strerror(errno);
        ::close(fds[0]);
        ::close(fds[1]);
        return out;
    }
    if (pid == 0) {
        ::close(fds[0]);
        FullDiskOutcome child;
        if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
            child.setup_error = std::string("unshare(CLONE_NEWUSER | CLONE_NEWNS): ") + std::strerror(errno);
        else if (!write_proc_file("/proc/self/setgroups", "deny") ||
                 !write_proc_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
                 !write_proc_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"))
            child.setup_error = std::string("user namespace id maps: ") + std::strerror(errno);
        else if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
            child.setup_error = std::string("private mount propagation: ") + std::strerror(errno);
        else
            child = fill_a_small_tmpfs(root);
        // One line of flags, then the setup error and the store error, each on a line.
        auto one_line = [](std::string s) {
            for (auto& c : s)
                if (c == '\n')
                    c = ' ';
            return s;
        };
        std::string report;
        for (const bool flag : {child.ok, child.temporary, child.disk_full, child.tmp_empty, child.new_empty,
                                child.small_ok})
            report += flag ? '1' : '0';
        report += "\n" + one_line(child.setup_error) + "\n" + one_line(child.error) + "\n";
        const char* p = report.data();
        std::size_t left = report.size();
        while (left > 0) {
            const ssize_t n = ::write(fds[1], p, left);
            if (n <= 0)
                break;
            p += n;
            left -= static_cast<std::size_t>(n);
        }
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string report;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        report.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const auto first = report.find('\n');
    const auto second = first == std::string::npos ? first : report.find('\n', first + 1);
    if (second == std::string::npos || first != 6) {
        out.setup_error = "the namespace child reported nothing usable (wait status " + std::to_string(status) + ")";
        return out;
    }
    const auto flag = [&](std::size_t i) { return report[i] == '1'; };
    out.ok = flag(0);
    out.temporary = flag(1);
    out.disk_full = flag(2);
    out.tmp_empty = flag(3);
    out.new_empty = flag(4);
    out.small_ok = flag(5);
    out.setup_error = report.substr(first + 1, second - first - 1);
    out.error = report.substr(second + 1);
    if (!out.error.empty() && out.error.back() == '\n')
        out.error.pop_back();
    return out;
}

} // namespace

TEST_CASE("A full disk reports disk_full and leaves no partial file")
{
    // A 64k tmpfs is the full disk: mounted here as root, else in a child process's own
    // user and mount namespaces. Where neither is possible the case cannot run: a loud
    // warning on a developer's machine, a failure under CI (CI runs the tests as root).
    const std::string root = test::fresh_dir("maildir-full");
    const bool as_root = ::geteuid() == 0;
    const FullDiskOutcome r = as_root ? fill_a_small_tmpfs(root) : fill_a_small_tmpfs_in_a_namespace(root);
    if (!r.setup_error.empty()) {
        const std::string why = "disk-full delivery NOT TESTED: " + r.setup_error +
                                (as_root ? "" : " (not root, and no user namespace for a tmpfs)");
        if (std::getenv("CI") != nullptr)
            FAIL(why << "; CI is set, where this case must run");
        WARN("*** " << why << " ***");
        return;
    }
    INFO(r.error);
    CHECK_FALSE(r.ok);
    CHECK(r.temporary);
    CHECK(r.disk_full);
    CHECK(r.error.find("No space left on device") != std::string::npos);
    CHECK(r.tmp_empty);
    CHECK(r.new_empty);
    // The space of the failed attempt was given back: a small message still fits.
    CHECK(r.small_ok);
}
