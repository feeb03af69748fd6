// RAII owners for every OpenSSL and libunbound handle the project touches. This is the
// only place their free functions are named; everything else holds these types.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <unbound.h>

#include <memory>

namespace amtp {

template <typename T, void (*Free)(T*)>
struct FreeWith {
    void operator()(T* p) const noexcept
    {
        if (p)
            Free(p);
    }
};

namespace detail {
inline void free_x509_stack(STACK_OF(X509) * s) { sk_X509_pop_free(s, X509_free); }
inline void free_general_names(GENERAL_NAMES* g) { GENERAL_NAMES_free(g); }
inline void free_bio(BIO* b) { BIO_free_all(b); }
inline void free_openssl_string(char* s) { OPENSSL_free(s); }
inline void free_bignum(BIGNUM* b) { BN_free(b); }
inline void free_ub_ctx(ub_ctx* c) { ub_ctx_delete(c); }
inline void free_ub_result(ub_result* r) { ub_resolve_free(r); }
} // namespace detail

using X509Ptr = std::unique_ptr<X509, FreeWith<X509, X509_free>>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), FreeWith<STACK_OF(X509), detail::free_x509_stack>>;
using X509StorePtr = std::unique_ptr<X509_STORE, FreeWith<X509_STORE, X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, FreeWith<X509_STORE_CTX, X509_STORE_CTX_free>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, FreeWith<X509_CRL, X509_CRL_free>>;
using X509VerifyParamPtr = std::unique_ptr<X509_VERIFY_PARAM, FreeWith<X509_VERIFY_PARAM, X509_VERIFY_PARAM_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, FreeWith<GENERAL_NAMES, detail::free_general_names>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, FreeWith<EVP_PKEY, EVP_PKEY_free>>;
using EvpCipherPtr = std::unique_ptr<EVP_CIPHER, FreeWith<EVP_CIPHER, EVP_CIPHER_free>>;
using EvpKdfPtr = std::unique_ptr<EVP_KDF, FreeWith<EVP_KDF, EVP_KDF_free>>;
using EvpKdfCtxPtr = std::unique_ptr<EVP_KDF_CTX, FreeWith<EVP_KDF_CTX, EVP_KDF_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, FreeWith<BIO, detail::free_bio>>;
using OpenSslString = std::unique_ptr<char, FreeWith<char, detail::free_openssl_string>>;
using BignumPtr = std::unique_ptr<BIGNUM, FreeWith<BIGNUM, detail::free_bignum>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, FreeWith<SSL_CTX, SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, FreeWith<SSL, SSL_free>>;
using UbCtxPtr = std::unique_ptr<ub_ctx, FreeWith<ub_ctx, detail::free_ub_ctx>>;
using UbResultPtr = std::unique_ptr<ub_result, FreeWith<ub_result, detail::free_ub_result>>;

} // namespace amtp
