// tls.ticket-keys: the file of TLS session ticket keys shared by the hosts of one
// domain (core/include/amtp/ticket_keys.hpp), its checks and its rotation.
#include <catch2/catch.hpp>

#include "amtp/errors.hpp"
#include "amtp/ticket_keys.hpp"
#include "support/test_paths.hpp"

#include <sys/stat.h>

#include <string>

using namespace amtp;

namespace {

const std::string name_a = "00112233445566778899aabbccddeeff";
const std::string hmac_a = "0101010101010101010101010101010101010101010101010101010101010101";
const std::string aes_a = "A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2";
const std::string name_b = "ffeeddccbbaa99887766554433221100";
const std::string hmac_b = "0303030303030303030303030303030303030303030303030303030303030303";
const std::string aes_b = "0404040404040404040404040404040404040404040404040404040404040404";

std::string line_a()
{
    return name_a + " " + hmac_a + " " + aes_a + "\n";
}

std::string line_b()
{
    return name_b + "\t" + hmac_b + "  " + aes_b + "\n";
}

ConfigError error_of(const std::string& text)
{
    try {
        parse_ticket_keys(text, "ticket.keys");
    } catch (const ConfigError& e) {
        return e;
    }
    FAIL("no ConfigError for: " << text);
    return ConfigError("unreachable");
}

std::string file_with(const std::string& dir, const std::string& text, mode_t mode)
{
    const auto path = amtp::test::write_file(dir + "/ticket.keys", text);
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    return path;
}

mode_t mode_of(const std::string& path)
{
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

} // namespace

TEST_CASE("A ticket key file is read newest first; comments, blank lines and CRLF are allowed", "[ticket-keys]")
{
    const auto keys = parse_ticket_keys("# farm keys\n\n" + line_a() + "   \r\n" + line_b() + "# end\n", "ticket.keys");
    CHECK(keys.source == "ticket.keys");
    REQUIRE(keys.keys.size() == 2);
    CHECK(keys.keys[0].line == 3);
    CHECK(keys.keys[0].name[0] == 0x00);
    CHECK(keys.keys[0].name[15] == 0xff);
    CHECK(keys.keys[0].hmac[31] == 0x01);
    CHECK(keys.keys[0].aes[0] == 0xa2);   // either case
    CHECK(keys.keys[1].line == 5);
    CHECK(keys.keys[1].name[0] == 0xff);
    CHECK(keys.newest(keys.keys[0]));
    CHECK_FALSE(keys.newest(keys.keys[1]));
    CHECK(keys.find(keys.keys[1].name.data()) == &keys.keys[1]);
    const unsigned char unknown[TicketKey::name_size] = {};
    CHECK(keys.find(unknown) == nullptr);
}

TEST_CASE("A comment after a ticket key stays with it through a rewrite", "[ticket-keys]")
{
    const auto keys = parse_ticket_keys(name_a + " " + hmac_a + " " + aes_a + "  # made 2030-01-01T00:00:00Z\n",
                                        "ticket.keys");
    REQUIRE(keys.keys.size() == 1);
    CHECK(keys.keys[0].note == "made 2030-01-01T00:00:00Z");
    const auto again = parse_ticket_keys(format_ticket_keys(keys.keys), "again");
    REQUIRE(again.keys.size() == 1);
    CHECK(again.keys[0].name == keys.keys[0].name);
    CHECK(again.keys[0].hmac == keys.keys[0].hmac);
    CHECK(again.keys[0].aes == keys.keys[0].aes);
    CHECK(again.keys[0].note == "made 2030-01-01T00:00:00Z");
}

TEST_CASE("A malformed ticket key line is a ConfigError with file, line and key that never quotes the line",
          "[ticket-keys]")
{
    struct Case {
        std::string text;
        unsigned line;
        std::string message;
    };
    const Case cases[] = {
        {"# one\n" + name_a + " " + hmac_a + "\n", 2, "expected 3 fields (NAME HMAC-KEY AES-KEY, in hex), found 2"},
        {line_a() + name_b + " " + hmac_b + " " + aes_b + " " + aes_b + "\n", 2,
         "expected 3 fields (NAME HMAC-KEY AES-KEY, in hex), found 4"},
        {name_a.substr(2) + " " + hmac_a + " " + aes_a + "\n", 1, "the key name is not 32 hex digits (16 bytes)"},
        {name_a + " " + hmac_a + "0 " + aes_a + "\n", 1, "the HMAC key is not 64 hex digits (32 bytes)"},
        {name_a + " " + hmac_a + " " + aes_a.substr(0, 63) + "g\n", 1, "the AES key is not 64 hex digits (32 bytes)"},
        {line_a() + "\n" + name_a + " " + hmac_b + " " + aes_b + "\n", 3,
         "the key name is already used on line 1 (a ticket names the key that decrypts it: names must differ)"},
    };
    for (const auto& c : cases) {
        INFO(c.message);
        const ConfigError e = error_of(c.text);
        CHECK(e.file() == "ticket.keys");
        CHECK(e.line() == c.line);
        CHECK(e.key() == "tls.ticket-keys");
        CHECK(e.message() == c.message);
        // A line that fails to parse may still hold a real key: no part of it is shown.
        const std::string what = e.what();
        for (const std::string& secret : {hmac_a, aes_a, hmac_b, aes_b, aes_a.substr(0, 63)})
            CHECK(what.find(secret) == std::string::npos);
    }
}

TEST_CASE("A ticket key file without a key is refused", "[ticket-keys]")
{
    for (const std::string text : {"", "\n\n", "# nothing yet\n"}) {
        const ConfigError e = error_of(text);
        CHECK(e.line() == 0);
        CHECK(e.key() == "tls.ticket-keys");
        CHECK(std::string(e.what()).find("holds no key") != std::string::npos);
    }
}

TEST_CASE("A ticket key file open to group or others is refused, as ssh refuses such a private key",
          "[ticket-keys]")
{
    const auto dir = amtp::test::fresh_dir("ticket-keys-mode");
    for (const mode_t mode : {0640, 0604, 0620, 0660, 0644}) {
        INFO(mode);
        const auto path = file_with(dir, line_a(), mode);
        try {
            read_ticket_keys(path);
            FAIL("accepted");
        } catch (const ConfigError& e) {
            CHECK(e.file() == path);
            CHECK(e.key() == "tls.ticket-keys");
            CHECK(e.message().find("open to group or others") != std::string::npos);
            CHECK(e.message().find("chmod 600") != std::string::npos);
        }
    }
    for (const mode_t mode : {0600, 0400}) {
        const auto path = file_with(dir, line_a() + line_b(), mode);
        CHECK(read_ticket_keys(path).keys.size() == 2);
    }
}

TEST_CASE("A ticket key file that cannot be read is a ConfigError naming it", "[ticket-keys]")
{
    const auto dir = amtp::test::fresh_dir("ticket-keys-missing");
    try {
        read_ticket_keys(dir + "/absent.keys");
        FAIL("accepted");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()) ==
              dir + "/absent.keys: tls.ticket-keys: cannot read the ticket key file: No such file or directory");
    }
    try {
        read_ticket_keys(dir);
        FAIL("accepted");
    } catch (const ConfigError& e) {
        CHECK(e.message() == "the ticket key file is not a regular file");
    }
    // A bad line in a real file names the file and the line.
    const auto path = file_with(dir, line_a() + "nonsense\n", 0600);
    try {
        read_ticket_keys(path);
        FAIL("accepted");
    } catch (const ConfigError& e) {
        CHECK(e.file() == path);
        CHECK(e.line() == 2);
    }
}

TEST_CASE("Rotating ticket keys puts a new key on top, keeps the previous one and drops older ones",
          "[ticket-keys]")
{
    const auto dir = amtp::test::fresh_dir("ticket-keys-rotate");
    const auto path = dir + "/ticket.keys";

    const auto first = rotate_ticket_keys(path);
    CHECK(first.created);
    CHECK(first.kept == 0);
    CHECK(mode_of(path) == 0600);
    const auto one = read_ticket_keys(path);
    REQUIRE(one.keys.size() == 1);
    CHECK(one.keys[0].note.rfind("made ", 0) == 0);

    const auto second = rotate_ticket_keys(path);
    CHECK_FALSE(second.created);
    CHECK(second.kept == 1);
    CHECK(second.dropped == 0);
    const auto two = read_ticket_keys(path);
    REQUIRE(two.keys.size() == 2);
    CHECK(two.keys[1].name == one.keys[0].name);   // the old newest is now the older key
    CHECK(two.keys[1].hmac == one.keys[0].hmac);
    CHECK(two.keys[1].aes == one.keys[0].aes);
    CHECK(two.keys[1].note == one.keys[0].note);
    CHECK(two.keys[0].name != one.keys[0].name);
    CHECK(two.keys[0].hmac != one.keys[0].hmac);

    const auto third = rotate_ticket_keys(path);
    CHECK(third.kept == 1);
    CHECK(third.dropped == 1);
    const auto three = read_ticket_keys(path);
    REQUIRE(three.keys.size() == 2);
    CHECK(three.keys[1].name == two.keys[0].name);
    CHECK(three.keys[0].name != two.keys[0].name);
    CHECK(mode_of(path) == 0600);

    // Nothing else is left beside it (the temporary file was renamed).
    CHECK(amtp::test::run_command("test $(ls -A '" + dir + "' | wc -l) -eq 1") == 0);
}

TEST_CASE("A rotation refuses a key file it could not use, and leaves it alone", "[ticket-keys]")
{
    const auto dir = amtp::test::fresh_dir("ticket-keys-rotate-bad");
    const auto open_file = file_with(dir, line_a(), 0644);
    CHECK_THROWS_AS(rotate_ticket_keys(open_file), ConfigError);
    CHECK(amtp::test::read_file(open_file) == line_a());
    REQUIRE(::chmod(open_file.c_str(), 0600) == 0);
    amtp::test::write_file(open_file, "garbage\n");
    CHECK_THROWS_AS(rotate_ticket_keys(open_file), ConfigError);
    CHECK(amtp::test::read_file(open_file) == "garbage\n");
}

TEST_CASE("New ticket keys are random", "[ticket-keys]")
{
    const TicketKey a = new_ticket_key();
    const TicketKey b = new_ticket_key();
    CHECK(a.name != b.name);
    CHECK(a.hmac != b.hmac);
    CHECK(a.aes != b.aes);
    CHECK(a.hmac != a.aes);
}
