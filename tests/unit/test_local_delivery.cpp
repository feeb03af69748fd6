// Local delivery decisions (local_delivery.hpp): which local recipients exist
// (delivery.recipients) and the one reply after DATA when the local deliveries of a
// message end differently. Each test names the rule it proves.
#include "amtp/errors.hpp"
#include "amtp/local_delivery.hpp"
#include "amtp/maildir.hpp"
#include "amtp/server_session.hpp"
#include "support/test_paths.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

using namespace amtp;

namespace {

LocalOutcome outcome(const std::string& rcpt, LocalStatus status, bool full = false)
{
    LocalOutcome o;
    o.recipient = rcpt;
    o.status = status;
    o.disk_full = full;
    o.reply = status == LocalStatus::delivered ? "" : "LMTP delivery: 5xx or 4xx";
    return o;
}

Settings settings_for(const std::string& root, const std::string& recipients)
{
    Settings s;
    s.hostname = "mx.b.test";
    s.delivery.local_domains = {"b.test"};
    s.delivery.maildir_root = root;
    s.delivery.recipients = recipients;
    return s;
}

} // namespace

TEST_CASE("Every local recipient delivered: 250 and nothing to carry")
{
    const auto s = settle_delivery({outcome("a@b.test", LocalStatus::delivered), outcome("b@b.test", LocalStatus::delivered)}, false);
    CHECK(s.reply == Reason::none);
    CHECK_FALSE(s.carry);
}

TEST_CASE("Once one copy is delivered, a failed recipient is carried and the reply is 250")
{
    // A 4xx here would make the client send bob's copy again.
    for (const auto failed : {LocalStatus::temporary, LocalStatus::permanent}) {
        const auto s = settle_delivery({outcome("bob@b.test", LocalStatus::delivered), outcome("ghost@b.test", failed)}, false);
        CHECK(s.reply == Reason::none);
        CHECK(s.carry);
        CHECK(s.detail.find("ghost@b.test") != std::string::npos);
    }
}

TEST_CASE("Nothing delivered and a temporary failure: 451 4.3.0, or 452 4.3.1 for a full disk")
{
    CHECK(settle_delivery({outcome("a@b.test", LocalStatus::temporary), outcome("b@b.test", LocalStatus::permanent)}, false)
              .reply == Reason::storage_temporary);
    CHECK(settle_delivery({outcome("a@b.test", LocalStatus::temporary, true)}, false).reply == Reason::storage_full);
    // Remote recipients queued do not change it: the queue entry can still be undone.
    const auto s = settle_delivery({outcome("a@b.test", LocalStatus::temporary)}, true);
    CHECK(s.reply == Reason::storage_temporary);
    CHECK_FALSE(s.carry);
}

TEST_CASE("Every local recipient refused for good: 554 5.0.0 delivery_refused, unless others are queued")
{
    CHECK(settle_delivery({outcome("a@b.test", LocalStatus::permanent)}, false).reply == Reason::delivery_refused);
    CHECK(reply_for(Reason::delivery_refused).wire().rfind("554 5.0.0 ", 0) == 0);
    const auto s = settle_delivery({outcome("a@b.test", LocalStatus::permanent)}, true);
    CHECK(s.reply == Reason::none);
    CHECK(s.carry); // bounced by the queue, beside the queued remote recipients
}

TEST_CASE("Recipient lists: one address per line, comments, case folded, bad lines named")
{
    std::vector<unsigned> bad;
    const auto list = parse_recipient_list("# site users\nBob@B.test\n\n  carol@b.test  # the boss\nnot an address\n", &bad);
    CHECK(list == std::set<std::string>{"bob@b.test", "carol@b.test"});
    CHECK(bad == std::vector<unsigned>{5});
}

TEST_CASE("delivery.recipients = mailbox: only an existing Maildir is a known recipient")
{
    const std::string root = test::fresh_dir("recipients-mailbox");
    REQUIRE(::mkdir((root + "/b.test").c_str(), 0700) == 0);
    REQUIRE(::mkdir((root + "/b.test/bob").c_str(), 0700) == 0);
    test::write_file(root + "/b.test/file", "not a mailbox");
    const auto r = LocalRecipients::from_settings(settings_for(root, "mailbox"));
    CHECK(r->check("bob@b.test").reason == Reason::none);
    CHECK(r->check("BOB@b.test").reason == Reason::none);
    CHECK(r->check("ghost@b.test").reason == Reason::unknown_recipient);
    CHECK(r->check("../bob@b.test").reason == Reason::unknown_recipient);
    // A broken mailbox or an absent root (unmounted volume) is temporary, never a 5xx.
    CHECK(r->check("file@b.test").reason == Reason::storage_temporary);
    const auto gone = LocalRecipients::from_settings(settings_for(root + "/absent", "mailbox"));
    CHECK(gone->check("bob@b.test").reason == Reason::storage_temporary);
}

TEST_CASE("delivery.recipients = file:PATH lists the recipients; any accepts every local part")
{
    const std::string dir = test::fresh_dir("recipients-file");
    const std::string list = test::write_file(dir + "/users", "bob@b.test\n");
    const auto r = LocalRecipients::from_settings(settings_for(dir, "file:" + list));
    CHECK(r->check("bob@b.test").reason == Reason::none);
    CHECK(r->check("carol@b.test").reason == Reason::unknown_recipient);
    CHECK(LocalRecipients::from_settings(settings_for(dir, "any"))->check("carol@b.test").reason == Reason::none);
    CHECK_THROWS_AS(LocalRecipients::from_settings(settings_for(dir, "file:" + dir + "/missing")), ConfigError);
}

TEST_CASE("delivery.recipients = mailbox with delivery.lmtp: the agent's reply decides")
{
    Settings s = settings_for("/nonexistent", "mailbox");
    s.delivery.lmtp = "unix:/run/lmtp";
    CHECK(LocalRecipients::from_settings(s)->check("anyone@b.test").reason == Reason::none);
}

TEST_CASE("An unknown local recipient is refused at RCPT with 550 5.1.1 and no mailbox is created")
{
    const std::string root = test::fresh_dir("recipients-session");
    auto config = std::make_shared<ServerConfig>(
        make_server_config(settings_for(root, "mailbox"), nullptr, ListenerKind::private_network));
    std::vector<std::string> log;
    ServerSession session(config, *IpAddress::parse("127.0.0.2"), "S1", [&](const std::string& l) { log.push_back(l); });
    TlsInfo tls;
    Identity id;
    id.names = {"mx.a.test"};
    id.subject = "CN=mx.a.test";
    id.trust = TrustKind::private_ca;
    tls.identity.identity = id;
    session.start(tls);
    session.receive("EHLO mx.a.test\r\nMAIL FROM:<alice@a.test> MPC=per/individual\r\nRCPT TO:<ghost@b.test>\r\n");
    const std::string out = session.take_output();
    CHECK(out.find("550 5.1.1 ") != std::string::npos);
    bool logged = false;
    for (const auto& l : log)
        logged = logged || l.find("reason=unknown_recipient") != std::string::npos;
    CHECK(logged);
    struct stat st{};
    CHECK(::stat((root + "/b.test/ghost").c_str(), &st) != 0);
}
