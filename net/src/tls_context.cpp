#include "amtp/net/tls_context.hpp"

#include "amtp/errors.hpp"
#include "amtp/identity_codec.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <array>
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

// What the ticket key callback of a context needs: the keys, and the cipher fetched
// once rather than at every ticket. Owned by the SSL_CTX (its ex_data), freed with it.
struct TicketCrypto {
    std::shared_ptr<const TicketKeys> keys;
    EvpCipherPtr cipher;
};

void free_ticket_crypto(void*, void* data, CRYPTO_EX_DATA*, int, long, void*)
{
    delete static_cast<TicketCrypto*>(data);
}

// The one SSL_CTX ex_data slot for TicketCrypto, allocated once per process.
int ticket_crypto_index()
{
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_ticket_crypto);
    return index;
}

// Tickets under tls.ticket-keys: AES-256-CBC, then HMAC-SHA256 over the result, the
// scheme OpenSSL uses with its own keys. Encrypting: the newest key and a fresh IV.
// Decrypting: the key the ticket names; 0 (no such key, retired or another farm's)
// makes OpenSSL ignore the ticket and do a full handshake; 2 (an older key) has the
// ticket renewed, so the client leaves with one made by the newest key. A negative
// value is an internal failure and ends the handshake.
int ticket_key_callback(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher_ctx,
                        EVP_MAC_CTX* mac_ctx, int enc)
{
    const auto* crypto = static_cast<const TicketCrypto*>(
        SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticket_crypto_index()));
    if (!crypto || !crypto->keys || crypto->keys->keys.empty() || !crypto->cipher)
        return -1;
    const TicketKeys& keys = *crypto->keys;
    const TicketKey* key = nullptr;
    if (enc) {
        key = &keys.keys.front();
        const int iv_length = EVP_CIPHER_get_iv_length(crypto->cipher.get());
        if (iv_length <= 0 || iv_length > EVP_MAX_IV_LENGTH || RAND_bytes(iv, iv_length) != 1)
            return -1;
        std::memcpy(name, key->name.data(), TicketKey::name_size);
    } else {
        key = keys.find(name);
        if (!key)
            return 0;
    }
    static char digest[] = "SHA256";
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key->hmac.data()),
                                          key->hmac.size()),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_CTX_set_params(mac_ctx, params) != 1)
        return -1;
    const int ready = enc ? EVP_EncryptInit_ex(cipher_ctx, crypto->cipher.get(), nullptr, key->aes.data(), iv)
                          : EVP_DecryptInit_ex(cipher_ctx, crypto->cipher.get(), nullptr, key->aes.data(), iv);
    if (ready != 1)
        return -1;
    return enc || keys.newest(*key) ? 1 : 2;
}

// Hands the keys of `listener`, derived from `keys`, to the context's ticket key callback.
void use_ticket_keys(SSL_CTX* ctx, const Settings& s, ListenerKind listener, const TicketKeys& keys)
{
    if (keys.keys.empty())
        throw ConfigError(s.source, 0, ticket_keys_setting, "no ticket key to use");
    auto crypto = std::make_unique<TicketCrypto>();
    crypto->keys = std::make_shared<const TicketKeys>(listener_ticket_keys(keys, listener));
    crypto->cipher.reset(EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr));
    if (!crypto->cipher)
        throw ConfigError(s.source, 0, ticket_keys_setting, "AES-256-CBC is not available: " + openssl_error());
    if (SSL_CTX_set_ex_data(ctx, ticket_crypto_index(), crypto.get()) != 1)
        throw ConfigError(s.source, 0, ticket_keys_setting, "cannot attach the ticket keys: " + openssl_error());
    crypto.release();   // the context owns it now (free_ticket_crypto)
    if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_callback) != 1)
        throw ConfigError(s.source, 0, ticket_keys_setting, "cannot install the ticket keys: " + openssl_error());
}

// Every decrypted ticket is renewed: an MTA resumes one session at a time per peer, so
// each resumption hands it the next ticket (made with the newest key).
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

SslCtxPtr make_server_context(const Settings& s, ListenerKind listener, Resumption resumption, EVP_PKEY* key,
                              std::shared_ptr<const TicketKeys> ticket_keys)
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
        SSL_CTX_set_timeout(ctx.get(), ticket_lifetime_seconds);
        if (!ticket_keys && !s.tls.ticket_keys.empty())
            ticket_keys = std::make_shared<const TicketKeys>(read_ticket_keys(s.tls.ticket_keys));
        if (ticket_keys)
            use_ticket_keys(ctx.get(), s, listener, *ticket_keys);
        break;
    }
    return ctx;
}

TicketKeys listener_ticket_keys(const TicketKeys& keys, ListenerKind listener)
{
    const EvpKdfPtr kdf(EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_HKDF, nullptr));
    if (!kdf)
        throw ConfigError(keys.source, 0, ticket_keys_setting, "HKDF is not available: " + openssl_error());
    std::string info = "amtp ticket key ";
    info += listener == ListenerKind::public_network ? "public" : "private";
    static char digest[] = "SHA256";
    constexpr std::size_t name = TicketKey::name_size;
    constexpr std::size_t hmac = TicketKey::hmac_size;
    constexpr std::size_t size = TicketKey::name_size + TicketKey::hmac_size + TicketKey::aes_size;

    TicketKeys out;
    out.source = keys.source;
    out.keys.reserve(keys.keys.size());
    for (const TicketKey& key : keys.keys) {
        std::array<unsigned char, size> input{};
        std::array<unsigned char, size> output{};
        std::memcpy(input.data(), key.name.data(), name);
        std::memcpy(input.data() + name, key.hmac.data(), hmac);
        std::memcpy(input.data() + name + hmac, key.aes.data(), TicketKey::aes_size);
        const OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, input.data(), input.size()),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
            OSSL_PARAM_construct_end(),
        };
        const EvpKdfCtxPtr ctx(EVP_KDF_CTX_new(kdf.get()));
        const bool derived = ctx && EVP_KDF_derive(ctx.get(), output.data(), output.size(), params) == 1;
        OPENSSL_cleanse(input.data(), input.size());
        if (!derived)
            throw ConfigError(keys.source, key.line, ticket_keys_setting, "cannot derive the listener's keys: " +
                                                                           openssl_error());
        TicketKey& mine = out.keys.emplace_back();
        mine.line = key.line;
        std::memcpy(mine.name.data(), output.data(), name);
        std::memcpy(mine.hmac.data(), output.data() + name, hmac);
        std::memcpy(mine.aes.data(), output.data() + name + hmac, TicketKey::aes_size);
        OPENSSL_cleanse(output.data(), output.size());
    }
    return out;
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
