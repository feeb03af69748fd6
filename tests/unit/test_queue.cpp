#include "amtp/queue.hpp"

#include "support/test_paths.hpp"

#include <catch2/catch.hpp>

#include <filesystem>

using namespace amtp;
namespace fs = std::filesystem;

namespace {

QueueEntry sample(Queue& q)
{
    QueueEntry e;
    e.id = q.new_id();
    e.sender = "cust@b.test";
    e.mpc = MpcValue{"per", "individual"};
    e.recipients = {{"alice@a.test", QueuedStatus::pending, ""}, {"carl@c.test", QueuedStatus::pending, ""}};
    e.created = 1795459000;
    e.next_attempt = 1795459000;
    return e;
}

std::size_t files_in(const std::string& dir)
{
    return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

} // namespace

TEST_CASE("A queued message and its envelope survive and load back exactly")
{
    Queue q(test::fresh_dir("queue"));
    QueueEntry e = sample(q);
    REQUIRE(q.enqueue(e, {"Received: x\r\n", "Subject: s\r\n\r\nbody\r\n"}).ok);
    const auto all = q.load_all();
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == e.id);
    CHECK(all[0].sender == "cust@b.test");
    CHECK(all[0].mpc.str() == "per/individual");
    REQUIRE(all[0].recipients.size() == 2);
    CHECK(all[0].recipients[1].address == "carl@c.test");
    CHECK(*q.read_message(e.id) == "Received: x\r\nSubject: s\r\n\r\nbody\r\n");
}

TEST_CASE("Queue updates replace the envelope and removal deletes both files")
{
    const std::string dir = test::fresh_dir("queue");
    Queue q(dir);
    QueueEntry e = sample(q);
    REQUIRE(q.enqueue(e, {"m\r\n"}).ok);
    e.recipients[0].status = QueuedStatus::delivered;
    e.recipients[1].status = QueuedStatus::failed;
    e.recipients[1].last_reply = "550 5.1.2 No AMTP service\r\n injected";
    e.attempts = 3;
    REQUIRE(q.update(e).ok);
    const auto back = q.load_all().at(0);
    CHECK(back.attempts == 3);
    CHECK(back.recipients[0].status == QueuedStatus::delivered);
    CHECK(back.recipients[1].last_reply.find('\n') == std::string::npos); // never a raw line break
    CHECK_FALSE(back.finished()); // a failure not yet reported by a bounce
    e.recipients[1].status = QueuedStatus::bounced;
    CHECK(e.finished());
    REQUIRE(q.remove(e.id).ok);
    CHECK(q.load_all().empty());
    CHECK(files_in(dir) == 0);
}

TEST_CASE("Half-written queue files are never taken for entries")
{
    const std::string dir = test::fresh_dir("queue");
    Queue q(dir);
    test::write_file(dir + "/tmp.ABC.env", "amtp-queue 1\nid ABC\n");
    test::write_file(dir + "/ORPHAN.msg", "never acknowledged\r\n");
    test::write_file(dir + "/TORN.env", "amtp-queue 1\nid TORN\nmpc per/individual\nrcpt pending a@a.test"); // no final newline
    test::write_file(dir + "/TORN.msg", "x");
    CHECK(q.load_all().empty());
    CHECK(fs::exists(dir + "/ORPHAN.msg")); // could be an enqueue in progress elsewhere
    CHECK(q.load_all(std::chrono::seconds(0)).empty());
    CHECK_FALSE(fs::exists(dir + "/tmp.ABC.env"));
    CHECK_FALSE(fs::exists(dir + "/ORPHAN.msg"));
}

TEST_CASE("Damaged envelopes are refused by the parser")
{
    for (const char* bad : {"", "amtp-queue 3\n",
                            "amtp-queue 2\nid A\nmpc per/individual\nrcpt pending a%2@b.test \n",
                            "amtp-queue 2\nid A\nmpc per/individual\nrcpt pending a%zz@b.test \n",
                            "amtp-queue 2\nid A\nmpc per/individual\nrcpt pending a@b.test\n",
                            "amtp-queue 2\nid A\nmpc per/individual\nrcpt pending a@b.test x y\n",
                            "amtp-queue 2\nid A\nsender a\x01@b.test\nmpc per/individual\nrcpt pending a@b.test \n", "amtp-queue 1\nid ../etc\nmpc per/individual\nrcpt pending a@b.test x\n",
                            "amtp-queue 1\nid A\nmpc per/bulk\nrcpt pending a@b.test x\n",
                            "amtp-queue 1\nid A\nmpc per/individual\n", "amtp-queue 1\nid A\nmpc per/individual\nrcpt sent a@b.test\n",
                            "amtp-queue 1\nid A\ncreated soon\nmpc per/individual\nrcpt pending a@b.test\n",
                            "amtp-queue 1\nid A\nmpc per/individual\nrcpt pending a@b.test\nextra line\n"}) {
        INFO(bad);
        CHECK_FALSE(parse_entry(bad));
    }
}

TEST_CASE("Quoted local parts survive the queue: quoted, UTF-8 and long addresses load back exactly")
{
    const std::string dir = test::fresh_dir("queue");
    const std::string long_local(64, 'l');
    std::string long_domain;
    for (int i = 0; i < 4; ++i)
        long_domain += std::string(60, char('a' + i)) + ".";
    long_domain += "test";
    const std::vector<std::string> addresses{
        "\"a b\"@a.test",                              // a space: the old format split here
        "\"a  b\\\" c%41\"@a.test",                    // two spaces, a quoted-pair, a percent
        "j\xc3\xbc" "rgen@b\xc3\xbc" "cher.test",         // UTF-8 (SMTPUTF8)
        "\"\"@a.test",                                 // the empty quoted string
        long_local + "@" + long_domain,               // 64 + 1 + 244 octets
    };
    QueueEntry e;
    {
        Queue q(dir);
        e = sample(q);
        e.sender = "\"x y\"@b.test";
        e.recipients.clear();
        for (const auto& a : addresses)
            e.recipients.push_back({a, QueuedStatus::pending, "451 4.3.0 try again"});
        REQUIRE(q.enqueue(e, {"Subject: s\r\n\r\nbody\r\n"}).ok);
    }
    // A new Queue object over the same directory, as after a restart.
    Queue q(dir);
    const auto all = q.load_all();
    REQUIRE(all.size() == 1);
    CHECK(all[0].sender == "\"x y\"@b.test");
    REQUIRE(all[0].recipients.size() == addresses.size());
    for (std::size_t i = 0; i < addresses.size(); ++i) {
        CHECK(all[0].recipients[i].address == addresses[i]);
        CHECK(all[0].recipients[i].last_reply == "451 4.3.0 try again");
    }
    // And once more through an update, the way the queue runner rewrites it.
    REQUIRE(q.update(all[0]).ok);
    CHECK(q.load_all().at(0).recipients.at(0).address == "\"a b\"@a.test");
}

TEST_CASE("Quoted local parts survive the queue: envelopes of the first format are still read")
{
    const auto e = parse_entry("amtp-queue 1\nid A1\ncreated 5\nnext 6\nattempts 1\nsender \nmpc net/autoresponse\n"
                               "rcpt failed bob@b.test 550 5.1.1 no such user\nrcpt pending carl@c.test\n");
    REQUIRE(e);
    CHECK(e->sender.empty());
    REQUIRE(e->recipients.size() == 2);
    CHECK(e->recipients[0].address == "bob@b.test");
    CHECK(e->recipients[0].status == QueuedStatus::failed);
    CHECK(e->recipients[0].last_reply == "550 5.1.1 no such user");
    CHECK(e->recipients[1].address == "carl@c.test");
    CHECK(e->recipients[1].last_reply.empty());
}

TEST_CASE("Retries follow queue.retry-schedule and stay at its last step")
{
    const std::vector<std::chrono::seconds> schedule{std::chrono::seconds(60), std::chrono::seconds(600)};
    CHECK(next_attempt_time(1000, 1, schedule) == 1060);
    CHECK(next_attempt_time(1000, 2, schedule) == 1600);
    CHECK(next_attempt_time(1000, 9, schedule) == 1600);
    CHECK(next_attempt_time(1000, 1, {}) == 1300);
    CHECK_FALSE(queue_expired(1000, 1000 + 3600, std::chrono::hours(2)));
    CHECK(queue_expired(1000, 1000 + 3 * 3600, std::chrono::hours(2)));
}

TEST_CASE("A bounce names each failed recipient with its reply and quotes the original header")
{
    Queue q(test::fresh_dir("queue"));
    QueueEntry e = sample(q);
    e.recipients[0].status = QueuedStatus::delivered;
    e.recipients[1].status = QueuedStatus::failed;
    e.recipients[1].last_reply = "550 5.1.2 No AMTP service (_amtp._tcp SRV) for recipient domain";
    const std::string b = bounce_message("mx.b.test", e, "Subject: original\r\nFrom: cust@b.test\r\n\r\nsecret body\r\n", 0);
    CHECK(b.find("From: Mail Delivery System <MAILER-DAEMON@mx.b.test>\r\n") == 0);
    CHECK(b.find("To: <cust@b.test>") != std::string::npos);
    CHECK(b.find("<carl@c.test>: 550 5.1.2") != std::string::npos);
    CHECK(b.find("alice@a.test") == std::string::npos);
    CHECK(b.find("Status: 5.1.2") != std::string::npos);
    CHECK(b.find("Subject: original") != std::string::npos);
    CHECK(b.find("secret body") == std::string::npos);
}
