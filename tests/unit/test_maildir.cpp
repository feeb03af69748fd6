#include <catch2/catch.hpp>

#include "amtp/maildir.hpp"
#include "support/test_paths.hpp"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
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

TEST_CASE("A full disk reports disk_full and leaves no partial file")
{
    if (::geteuid() != 0) {
        WARN("not root: cannot mount a small tmpfs, disk-full delivery not tested");
        return;
    }
    const std::string root = test::fresh_dir("maildir-full");
    TmpfsMount mount(root, 0, "size=64k,mode=0700");
    if (!mount.mounted())
        FAIL("cannot mount a 64k tmpfs on " << root << ": " << mount.error());

    const std::string big(1 << 20, 'x');
    const auto r = store_in_maildir(root, "b.test", "bob", {message, big});
    INFO(r.error);
    CHECK_FALSE(r.ok);
    CHECK(r.temporary);
    CHECK(r.disk_full);
    CHECK(r.error.find("No space left on device") != std::string::npos);
    const fs::path box = fs::path(root) / "b.test" / "bob";
    CHECK(entries(box / "tmp").empty());
    CHECK(entries(box / "new").empty());

    // The space of the failed attempt was given back: a small message still fits.
    const auto small = store_in_maildir(root, "b.test", "bob", {message});
    CHECK(small.ok);
}
