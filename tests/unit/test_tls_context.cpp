// amtpd's server contexts (net/include/amtp/net/tls_context.hpp): resumption with bound
// tickets under tls.ticket-keys, both ends in memory over a BIO pair. The same over the
// wire, with two amtpd and a reload, is tests/integration/test_farm.py.
#include <catch2/catch.hpp>

#include "amtp/errors.hpp"
#include "amtp/net/tls_context.hpp"
#include "amtp/ticket_keys.hpp"
#include "amtp/tls_identity.hpp"
#include "support/pki.hpp"
#include "support/test_paths.hpp"

#include <openssl/err.h>

#include <cstring>
#include <ctime>
#include <memory>
#include <string>

using namespace amtp;
using amtp::test::pki_file;

namespace {

const IpAddress peer = *IpAddress::parse("127.0.0.2");   // mx.a.test, certificate "client"

Settings server_settings(const std::string& ticket_keys)
{
    Settings s;
    s.source = "test.ini";
    s.hostname = "mx.b.test";
    s.tls.certificate = pki_file("server-b.chain.pem");
    s.tls.key = pki_file("server-b.key");
    s.tls.trusted_ca = {pki_file("public-root.pem")};
    s.tls.ticket_keys = ticket_keys;
    return s;
}

std::shared_ptr<const TrustStore> trust()
{
    TrustOptions options;
    options.public_ca_files = {pki_file("public-root.pem")};
    return TrustStore::load(options);
}

SslCtxPtr server_context(const std::string& ticket_keys)
{
    return net::make_server_context(server_settings(ticket_keys), ListenerKind::public_network,
                                    net::Resumption::bound_tickets);
}

SslCtxPtr client_context(int max_version = 0)
{
    SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    REQUIRE(ctx);
    if (max_version)
        REQUIRE(SSL_CTX_set_max_proto_version(ctx.get(), max_version) == 1);
    REQUIRE(SSL_CTX_use_certificate_chain_file(ctx.get(), pki_file("client.chain.pem").c_str()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx.get(), pki_file("client.key").c_str(), SSL_FILETYPE_PEM) == 1);
    return ctx;
}

// One connection as amtpd makes it: the server SSL carries its TicketBinding.
struct Connection {
    std::unique_ptr<net::TicketBinding> binding = std::make_unique<net::TicketBinding>();
    SslPtr client;
    SslPtr server;
    bool done = false;

    bool resumed() const { return SSL_session_reused(server.get()) == 1; }
    IdentityResult identity() { return net::handshake_identity(server.get(), *binding, std::time(nullptr)); }
    // The ticket the client holds now, or "" (its first 16 bytes name the key that made it).
    std::string ticket_key_name() const
    {
        const unsigned char* ticket = nullptr;
        std::size_t length = 0;
        SSL_SESSION_get0_ticket(SSL_get0_session(client.get()), &ticket, &length);
        return length >= TicketKey::name_size ? std::string(reinterpret_cast<const char*>(ticket), TicketKey::name_size)
                                              : std::string();
    }
};

std::unique_ptr<Connection> connect(SSL_CTX* client_ctx, SSL_CTX* server_ctx, const TrustStore& store,
                                    SSL_SESSION* resume = nullptr)
{
    auto c = std::make_unique<Connection>();
    c->binding->trust = &store;
    c->binding->listener = ListenerKind::public_network;
    c->binding->peer = peer;
    c->client.reset(SSL_new(client_ctx));
    c->server.reset(SSL_new(server_ctx));
    REQUIRE(c->client);
    REQUIRE(c->server);
    net::attach_ticket_binding(c->server.get(), c->binding.get());
    BIO* client_end = nullptr;
    BIO* server_end = nullptr;
    REQUIRE(BIO_new_bio_pair(&client_end, 0, &server_end, 0) == 1);
    SSL_set_bio(c->client.get(), client_end, client_end);
    SSL_set_bio(c->server.get(), server_end, server_end);
    if (resume)
        REQUIRE(SSL_set_session(c->client.get(), resume) == 1);
    SSL_set_connect_state(c->client.get());
    SSL_set_accept_state(c->server.get());
    for (int round = 0; round < 20 && !c->done; ++round) {
        const int client = SSL_do_handshake(c->client.get());
        const int server = SSL_do_handshake(c->server.get());
        c->done = client == 1 && server == 1;
    }
    REQUIRE(c->done);
    // One byte from server to client brings the client the TLS 1.3 ticket that follows
    // the handshake; a clean close keeps the session resumable.
    char byte = 'x';
    REQUIRE(SSL_write(c->server.get(), &byte, 1) == 1);
    REQUIRE(SSL_read(c->client.get(), &byte, 1) == 1);
    SSL_shutdown(c->client.get());
    SSL_shutdown(c->server.get());
    SSL_shutdown(c->client.get());
    ERR_clear_error();
    return c;
}

void require_mx_a(Connection& c)
{
    const IdentityResult identity = c.identity();
    REQUIRE(identity.ok());
    CHECK(identity.identity->names == std::vector<std::string>{"mx.a.test"});
}

std::string name_of(const TicketKey& key)
{
    return std::string(reinterpret_cast<const char*>(key.name.data()), key.name.size());
}

} // namespace

TEST_CASE("A session made with one host resumes with another that reads the same tls.ticket-keys", "[tls][ticket-keys]")
{
    const auto dir = amtp::test::fresh_dir("tls-context-farm");
    const std::string keys = dir + "/ticket.keys";
    rotate_ticket_keys(keys);
    const auto store = trust();
    const SslCtxPtr client_ctx = client_context();
    const SslCtxPtr host_a = server_context(keys);
    const SslCtxPtr host_b = server_context(keys);
    const SslCtxPtr loner = server_context("");   // OpenSSL's own random keys

    auto first = connect(client_ctx.get(), host_a.get(), *store);
    CHECK_FALSE(first->resumed());
    require_mx_a(*first);
    // The ticket names the public listener's key derived from the file's newest.
    const TicketKeys file = read_ticket_keys(keys);
    CHECK(first->ticket_key_name() == name_of(net::listener_ticket_keys(file, ListenerKind::public_network).keys.front()));
    CHECK(first->ticket_key_name() != name_of(file.keys.front()));

    auto elsewhere = connect(client_ctx.get(), host_b.get(), *store, SSL_get0_session(first->client.get()));
    CHECK(elsewhere->resumed());
    require_mx_a(*elsewhere);   // the identity verified by host A, carried in the ticket

    auto outsider = connect(client_ctx.get(), loner.get(), *store, SSL_get0_session(first->client.get()));
    CHECK_FALSE(outsider->resumed());
    require_mx_a(*outsider);    // a full handshake, verified from the chain

    // The private listener derives other keys from the same file: a public ticket is
    // not decrypted there (a full handshake, as with per-context keys).
    const SslCtxPtr private_b = net::make_server_context(server_settings(keys), ListenerKind::private_network,
                                                         net::Resumption::bound_tickets);
    auto other_listener = connect(client_ctx.get(), private_b.get(), *store, SSL_get0_session(first->client.get()));
    CHECK_FALSE(other_listener->resumed());
}

TEST_CASE("Each listener's ticket keys are derived from the file's, the same on every host", "[tls][ticket-keys]")
{
    const TicketKeys file = parse_ticket_keys(
        "00112233445566778899aabbccddeeff 0101010101010101010101010101010101010101010101010101010101010101 "
        "0202020202020202020202020202020202020202020202020202020202020202\n",
        "ticket.keys");
    const TicketKeys pub = net::listener_ticket_keys(file, ListenerKind::public_network);
    const TicketKeys pub_again = net::listener_ticket_keys(file, ListenerKind::public_network);
    const TicketKeys priv = net::listener_ticket_keys(file, ListenerKind::private_network);
    REQUIRE(pub.keys.size() == 1);
    REQUIRE(priv.keys.size() == 1);
    CHECK(pub.keys[0].name == pub_again.keys[0].name);
    CHECK(pub.keys[0].hmac == pub_again.keys[0].hmac);
    CHECK(pub.keys[0].aes == pub_again.keys[0].aes);
    CHECK(pub.keys[0].line == 1);
    CHECK(pub.keys[0].name != priv.keys[0].name);
    CHECK(pub.keys[0].hmac != priv.keys[0].hmac);
    CHECK(pub.keys[0].aes != priv.keys[0].aes);
    CHECK(pub.keys[0].name != file.keys[0].name);
    CHECK(pub.keys[0].aes != file.keys[0].aes);
}

TEST_CASE("After a rotation the previous key's tickets resume and are renewed; a retired key's are not",
          "[tls][ticket-keys]")
{
    const auto dir = amtp::test::fresh_dir("tls-context-rotation");
    const std::string keys = dir + "/ticket.keys";
    rotate_ticket_keys(keys);
    const auto store = trust();
    const SslCtxPtr client_ctx = client_context();

    const SslCtxPtr before = server_context(keys);
    auto first = connect(client_ctx.get(), before.get(), *store);
    const std::string k1 = first->ticket_key_name();
    REQUIRE(k1.size() == TicketKey::name_size);

    rotate_ticket_keys(keys);   // [K2, K1]: what a reload reads
    const std::string k2 =
        name_of(net::listener_ticket_keys(read_ticket_keys(keys), ListenerKind::public_network).keys.front());
    const SslCtxPtr rotated = server_context(keys);
    auto renewed = connect(client_ctx.get(), rotated.get(), *store, SSL_get0_session(first->client.get()));
    CHECK(renewed->resumed());
    require_mx_a(*renewed);
    CHECK(renewed->ticket_key_name() == k2);   // the client leaves with a ticket of the newest key

    // The renewed ticket carries the identity on.
    auto again = connect(client_ctx.get(), rotated.get(), *store, SSL_get0_session(renewed->client.get()));
    CHECK(again->resumed());
    require_mx_a(*again);

    rotate_ticket_keys(keys);   // [K3, K2]: K1 retired
    const SslCtxPtr later = server_context(keys);
    auto retired = connect(client_ctx.get(), later.get(), *store, SSL_get0_session(first->client.get()));
    CHECK_FALSE(retired->resumed());
    require_mx_a(*retired);
    auto kept = connect(client_ctx.get(), later.get(), *store, SSL_get0_session(renewed->client.get()));
    CHECK(kept->resumed());
    require_mx_a(*kept);
}

TEST_CASE("A TLS 1.2 client resumes across hosts and gets its old-key ticket renewed too", "[tls][ticket-keys]")
{
    const auto dir = amtp::test::fresh_dir("tls-context-tls12");
    const std::string keys = dir + "/ticket.keys";
    rotate_ticket_keys(keys);
    const auto store = trust();
    const SslCtxPtr client_ctx = client_context(TLS1_2_VERSION);
    const SslCtxPtr host_a = server_context(keys);

    auto first = connect(client_ctx.get(), host_a.get(), *store);
    REQUIRE(SSL_version(first->server.get()) == TLS1_2_VERSION);
    CHECK_FALSE(first->resumed());
    require_mx_a(*first);

    rotate_ticket_keys(keys);
    const std::string newest =
        name_of(net::listener_ticket_keys(read_ticket_keys(keys), ListenerKind::public_network).keys.front());
    const SslCtxPtr host_b = server_context(keys);
    auto resumed = connect(client_ctx.get(), host_b.get(), *store, SSL_get0_session(first->client.get()));
    CHECK(resumed->resumed());
    require_mx_a(*resumed);
    CHECK(resumed->ticket_key_name() == newest);
    auto again = connect(client_ctx.get(), host_b.get(), *store, SSL_get0_session(resumed->client.get()));
    CHECK(again->resumed());
    require_mx_a(*again);
}

TEST_CASE("A server context with an unusable tls.ticket-keys is a ConfigError naming the file", "[tls][ticket-keys]")
{
    const auto dir = amtp::test::fresh_dir("tls-context-bad-keys");
    const auto open_file = amtp::test::write_file(dir + "/open.keys", "# nothing\n");
    try {
        server_context(open_file);
        FAIL("accepted");
    } catch (const ConfigError& e) {
        CHECK(e.file() == open_file);
        CHECK(e.key() == "tls.ticket-keys");
    }
    try {
        server_context(dir + "/absent.keys");
        FAIL("accepted");
    } catch (const ConfigError& e) {
        CHECK(e.file() == dir + "/absent.keys");
        CHECK(e.key() == "tls.ticket-keys");
    }
    // A context that resumes nothing does not read the file.
    CHECK(net::make_server_context(server_settings(dir + "/absent.keys"), ListenerKind::public_network,
                                   net::Resumption::off));
}
