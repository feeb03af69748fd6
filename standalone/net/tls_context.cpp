#include "net/tls_context.hpp"

#include "amtp/errors.hpp"

#include <openssl/err.h>

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

SslCtxPtr base_context(const SSL_METHOD* method, const Settings& s)
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
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), s.tls.key.c_str(), SSL_FILETYPE_PEM) != 1)
        throw ConfigError(s.source, 0, "tls.key", "cannot load " + s.tls.key + ": " + openssl_error());
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
        throw ConfigError(s.source, 0, "tls.key", "the key does not match the certificate " + s.tls.certificate);
    return ctx;
}

} // namespace

SslCtxPtr make_server_context(const Settings& s, ListenerKind listener)
{
    SslCtxPtr ctx = base_context(TLS_server_method(), s);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, accept_any_certificate);
    // Tell clients which CAs we accept, so one with several certificates picks right.
    const auto& cas = listener == ListenerKind::public_network ? s.tls.trusted_ca : s.tls.private_ca;
    if (STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null()) {
        for (const auto& file : cas)
            SSL_add_file_cert_subjects_to_stack(names, file.c_str());
        SSL_CTX_set_client_CA_list(ctx.get(), names);
    }
    // No resumption: a resumed session carries only the client's leaf, not its chain,
    // so the identity could not be verified again. (Resumption needs the verified
    // identity kept with the session; until then every handshake is a full one.)
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    return ctx;
}

SslCtxPtr make_client_context(const Settings& s)
{
    SslCtxPtr ctx = base_context(TLS_client_method(), s);
    // Verified after the handshake against the SRV target (TrustStore::verify_server).
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    return ctx;
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

TrustOptions trust_options(const Settings& s, const std::vector<PrivateNetwork>& private_networks)
{
    TrustOptions t;
    t.public_ca_files = s.tls.trusted_ca;
    t.private_ca_files = s.tls.private_ca;
    t.crl_file = s.tls.crl;
    t.require_client_eku = s.tls.require_client_eku;
    t.private_networks = private_networks;
    return t;
}

} // namespace amtp::net
