#include "amtp/net/tls_context.hpp"

#include "amtp/errors.hpp"
#include "amtp/identity_codec.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstring>

namespace amtp::net {

namespace {

std::string openssl_error()
{
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (!e)
        return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

// The TLS layer accepts any presented certificate: the core decides after the
// handshake and answers EHLO with the precise reason.
int accept_any_certificate(int, X509_STORE_CTX*)
{
    return 1;
}

// The one ex_data slot for TicketBinding, allocated once per process and never changed.
int ticket_binding_index()
{
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

IdentityResult verify_now(SSL* ssl, TicketBinding& b, std::time_t now)
{
    const X509StackPtr chain = peer_certificate_chain(ssl);
    if (!chain || sk_X509_num(chain.get()) == 0) {
        IdentityResult r;
        r.reason = Reason::no_client_cert;
        return r;
    }
    return b.trust->verify_client(chain.get(), b.listener, b.peer, now);
}

// Making a ticket: verify the chain now (the handshake is complete but for our part)
// and put the identity in the ticket when it passed.
int make_ticket(SSL* ssl, void*)
{
    auto* b = static_cast<TicketBinding*>(SSL_get_ex_data(ssl, ticket_binding_index()));
    if (!b || !b->trust)
        return 1;
    if (!b->identity)
        b->identity = verify_now(ssl, *b, std::time(nullptr));
    if (b->identity->ok()) {
        const std::string data = encode_identity(BoundIdentity{*b->identity->identity, b->listener, b->peer});
        SSL_SESSION_set1_ticket_appdata(SSL_get_session(ssl), data.data(), data.size());
    }
    return 1;
}

SSL_TICKET_RETURN use_ticket(SSL*, SSL_SESSION*, const unsigned char*, size_t, SSL_TICKET_STATUS status, void*)
{
    switch (status) {
    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW:
        return SSL_TICKET_RETURN_USE_RENEW;
    case SSL_TICKET_EMPTY:
    case SSL_TICKET_NO_DECRYPT:
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    default:
        return SSL_TICKET_RETURN_IGNORE;
    }
}

SslCtxPtr base_context(const SSL_METHOD* method, const Settings& s, EVP_PKEY* key)
{
    SslCtxPtr ctx(SSL_CTX_new(method));
    if (!ctx)
        throw ConfigError("cannot create TLS context: " + openssl_error());
    const int min = s.tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx.get(), min);
    // Forward-secret AEAD suites only for TLS 1.2; TLS 1.3's defaults are all modern.
    SSL_CTX_set_cipher_list(ctx.get(), "ECDHE+AESGCM:ECDHE+CHACHA20");
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (s.tls.certificate.empty() || s.tls.key.empty())
        throw ConfigError(s.source, 0, "tls.certificate", "AMTP needs a certificate and key on both sides");
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), s.tls.certificate.c_str()) != 1)
        throw ConfigError(s.source, 0, "tls.certificate", "cannot load " + s.tls.certificate + ": " + openssl_error());
    if (key ? SSL_CTX_use_PrivateKey(ctx.get(), key) != 1
            : SSL_CTX_use_PrivateKey_file(ctx.get(), s.tls.key.c_str(), SSL_FILETYPE_PEM) != 1)
        throw ConfigError(s.source, 0, "tls.key", "cannot load " + s.tls.key + ": " + openssl_error());
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
        throw ConfigError(s.source, 0, "tls.key", "the key does not match the certificate " + s.tls.certificate);
    return ctx;
}

} // namespace

PrivateKeyFile read_private_key(const std::string& path)
{
    PrivateKeyFile out;
    errno = 0;
    const BioPtr bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) {
        out.denied = errno == EACCES || errno == EPERM;
        out.error = "cannot read " + path + ": " + (errno ? std::strerror(errno) : openssl_error());
        ERR_clear_error();
        return out;
    }
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
    if (!key) {
        out.error = "cannot load " + path + ": " + openssl_error();
        return out;
    }
    out.key = std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
    return out;
}

SslCtxPtr make_server_context(const Settings& s, ListenerKind listener, Resumption resumption, EVP_PKEY* key)
{
    SslCtxPtr ctx = base_context(TLS_server_method(), s, key);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, accept_any_certificate);
    // Idle sessions give their TLS record buffers back (about 34 KiB each).
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
    // Tell clients which CAs we accept, so one with several certificates picks right.
    const auto& cas = listener == ListenerKind::public_network ? s.tls.trusted_ca : s.tls.private_ca;
    if (STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null()) {
        for (const auto& file : cas)
            SSL_add_file_cert_subjects_to_stack(names, file.c_str());
        SSL_CTX_set_client_CA_list(ctx.get(), names);
    }
    static const unsigned char context_id[] = "amtp";
    SSL_CTX_set_session_id_context(ctx.get(), context_id, sizeof context_id - 1);
    // No server-side cache in either mode: the only sessions that can resume are
    // bound tickets.
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    switch (resumption) {
    case Resumption::off:
        // SSL_OP_NO_TICKET alone would still send TLS 1.3 clients (stateful) tickets
        // that no cache could ever honour; send none.
        SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx.get(), 0);
        break;
    case Resumption::bound_tickets:
        // Stateless tickets only; each carries the identity verified on the full handshake.
        SSL_CTX_set_session_ticket_cb(ctx.get(), make_ticket, use_ticket, nullptr);
        // One ticket per handshake (OpenSSL sends two by default): an MTA resumes one
        // session at a time per peer.
        SSL_CTX_set_num_tickets(ctx.get(), 1);
        break;
    }
    return ctx;
}

SslCtxPtr make_client_context(const Settings& s, EVP_PKEY* key)
{
    SslCtxPtr ctx = base_context(TLS_client_method(), s, key);
    // Verified after the handshake against the SRV target (TrustStore::verify_server).
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    return ctx;
}

void attach_ticket_binding(SSL* ssl, TicketBinding* binding)
{
    SSL_set_ex_data(ssl, ticket_binding_index(), binding);
}

IdentityResult handshake_identity(SSL* ssl, TicketBinding& b, std::time_t now)
{
    if (SSL_session_reused(ssl)) {
        void* data = nullptr;
        size_t len = 0;
        if (SSL_SESSION_get0_ticket_appdata(SSL_get0_session(ssl), &data, &len) != 1)
            len = 0;
        return resumed_identity(std::string_view(static_cast<const char*>(data), len), b.listener, b.peer, now);
    }
    if (!b.identity)
        b.identity = verify_now(ssl, b, now);
    return *b.identity;
}

std::string tls_version(SSL* ssl)
{
    return SSL_get_version(ssl);
}

std::string tls_cipher(SSL* ssl)
{
    const char* c = SSL_get_cipher_name(ssl);
    return c ? c : "";
}

} // namespace amtp::net
