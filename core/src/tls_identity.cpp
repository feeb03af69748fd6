// The TLS identity of a peer (draft s3.1, s4.2, s7; profile B2, B3): a presented chain
// plus the trust settings in, an Identity or one precise Reason out. No sockets, no
// SSL objects: the handshake belongs to the host, which verifies nothing itself and
// hands us what the peer sent.
#include "amtp/tls_identity.hpp"

#include "amtp/errors.hpp"
#include "amtp/log.hpp"
#include "amtp/names.hpp"
#include "verification_cache.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>

namespace amtp {

namespace {

constexpr unsigned usage_client = XKU_SSL_CLIENT;
constexpr unsigned usage_server = XKU_SSL_SERVER;

// ---------------------------------------------------------------- reading files

std::string read_config_file(const std::string& path, const std::string& key)
{
    struct FileCloser {
        void operator()(std::FILE* f) const noexcept { std::fclose(f); }
    };
    const std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
    if (!file)
        throw ConfigError(path, 0, key, std::string("cannot open: ") + std::strerror(errno));
    std::string data;
    char buffer[8192];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0)
        data.append(buffer, n);
    if (std::ferror(file.get()))  // e.g. EISDIR: fopen succeeds on a directory
        throw ConfigError(path, 0, key, std::string("cannot read: ") + std::strerror(errno));
    return data;
}

// The reason of OpenSSL's most recent error, and an empty queue for the next caller.
std::string take_openssl_error()
{
    const unsigned long code = ERR_peek_last_error();
    ERR_clear_error();
    if (code == 0)
        return "unknown error";
    const char* reason = ERR_reason_error_string(code);
    return reason ? reason : "error " + std::to_string(code);
}

bool looks_like_pem(const std::string& data)
{
    return data.find("-----BEGIN ") != std::string::npos;
}

BioPtr memory_bio(const std::string& data)
{
    BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    if (!bio)
        throw std::bad_alloc();
    return bio;
}

// Runs `read_one` until the PEM input is exhausted. A block that fails to parse is an
// error, not the end: a bundle must not lose its tail to one damaged certificate.
template <typename Ptr, typename ReadOne>
std::vector<Ptr> read_pem_objects(const std::string& data, const std::string& path, const std::string& key,
                                  ReadOne read_one)
{
    std::vector<Ptr> objects;
    const BioPtr bio = memory_bio(data);
    ERR_clear_error();
    while (true) {
        Ptr object(read_one(bio.get()));
        if (!object)
            break;
        objects.push_back(std::move(object));
    }
    const unsigned long last = ERR_peek_last_error();
    if (last != 0 && !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE))
        throw ConfigError(path, 0, key, "cannot parse: " + take_openssl_error());
    ERR_clear_error();
    return objects;
}

// A whole buffer that is exactly one DER object, else nullptr.
template <typename Ptr, typename Object>
Ptr read_der_object(const std::string& data, Object* (*d2i)(Object**, const unsigned char**, long))
{
    if (data.empty() || data.size() > static_cast<std::size_t>(LONG_MAX))
        return nullptr;
    const auto* begin = reinterpret_cast<const unsigned char*>(data.data());
    const unsigned char* p = begin;
    Ptr object(d2i(nullptr, &p, static_cast<long>(data.size())));
    ERR_clear_error();
    if (object && p != begin + data.size())
        return nullptr;  // trailing bytes: not what we were given
    return object;
}

// Every certificate in a PEM file, or the one certificate of a DER file.
std::vector<X509Ptr> load_certificates(const std::string& path, const std::string& key)
{
    const std::string data = read_config_file(path, key);
    std::vector<X509Ptr> certificates;
    if (looks_like_pem(data)) {
        certificates = read_pem_objects<X509Ptr>(data, path, key, [](BIO* bio) {
            return PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
        });
    } else if (auto one = read_der_object<X509Ptr>(data, d2i_X509)) {
        certificates.push_back(std::move(one));
    }
    if (certificates.empty())
        throw ConfigError(path, 0, key, "no certificate found (expected PEM or DER)");
    return certificates;
}

std::vector<X509CrlPtr> load_crls(const std::string& path, const std::string& key)
{
    const std::string data = read_config_file(path, key);
    std::vector<X509CrlPtr> crls;
    if (looks_like_pem(data)) {
        crls = read_pem_objects<X509CrlPtr>(data, path, key, [](BIO* bio) {
            return PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr);
        });
    } else if (auto one = read_der_object<X509CrlPtr>(data, d2i_X509_CRL)) {
        crls.push_back(std::move(one));
    }
    if (crls.empty())
        throw ConfigError(path, 0, key, "no CRL found (expected PEM or DER)");
    return crls;
}

X509StorePtr new_store()
{
    X509StorePtr store(X509_STORE_new());
    if (!store)
        throw std::bad_alloc();
    return store;
}

void add_certificate(X509_STORE* store, X509* certificate)
{
    // X509_STORE_add_cert takes its own reference (and ignores exact duplicates).
    if (X509_STORE_add_cert(store, certificate) != 1)
        throw std::runtime_error("X509_STORE_add_cert: " + take_openssl_error());
}

// ---------------------------------------------------------------- certificate facts

std::string hex_lower(const unsigned char* bytes, std::size_t size)
{
    static const char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(size * 2);
    for (std::size_t i = 0; i < size; ++i) {
        out += digits[bytes[i] >> 4];
        out += digits[bytes[i] & 0x0f];
    }
    return out;
}

std::string sha256_hex(X509* certificate)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (X509_digest(certificate, EVP_sha256(), digest, &size) != 1)
        return {};
    return hex_lower(digest, size);
}

std::string rfc2253(const X509_NAME* name)
{
    const BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || !name || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0)
        return {};
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

std::string serial_hex(X509* certificate)
{
    const BignumPtr number(ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nullptr));
    if (!number)
        return {};
    const OpenSslString hex(BN_bn2hex(number.get()));  // upper case, whole bytes
    return hex ? std::string(hex.get()) : std::string();
}

std::time_t to_time_t(const ASN1_TIME* time)
{
    std::tm tm{};
    if (!time || ASN1_TIME_to_tm(time, &tm) != 1)
        return 0;
    return timegm(&tm);
}

// A certificate's name in the form Identity keeps: a host name normalised, or a
// wildcard whose left-most label is exactly "*" with a normalised parent. Anything
// else (partial wildcards, bad syntax) is not a name we can use.
std::optional<std::string> normalize_certificate_name(std::string_view text)
{
    if (text.size() > 2 && text.compare(0, 2, "*.") == 0) {
        const auto parent = normalize_host_name(text.substr(2));
        if (!parent)
            return std::nullopt;
        return "*." + *parent;
    }
    return normalize_host_name(text);
}

void add_unique(std::vector<std::string>& names, std::string name)
{
    for (const auto& existing : names)
        if (existing == name)
            return;
    names.push_back(std::move(name));
}

// SAN dNSNames when the certificate has any (RFC 6125 s6.4.4: then the CN is not a
// name), else the subject's last (most specific) CN when it is a host name.
std::vector<std::string> certificate_names(X509* certificate)
{
    std::vector<std::string> names;
    int critical = -1;
    const GeneralNamesPtr sans(
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(certificate, NID_subject_alt_name, &critical, nullptr)));
    ERR_clear_error();
    if (critical == -2)
        return names;  // several SAN extensions: none is trustworthy, nor the CN
    bool san_has_dns = false;
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
        const GENERAL_NAME* entry = sk_GENERAL_NAME_value(sans.get(), i);
        if (entry->type != GEN_DNS)
            continue;
        san_has_dns = true;
        const ASN1_IA5STRING* dns = entry->d.dNSName;
        // The full length: an embedded NUL stays in and makes the name invalid.
        const std::string_view text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                    static_cast<std::size_t>(ASN1_STRING_length(dns)));
        if (auto name = normalize_certificate_name(text))
            add_unique(names, std::move(*name));
    }
    if (san_has_dns)
        return names;

    const X509_NAME* subject = X509_get_subject_name(certificate);
    int last = -1;
    for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;)
        last = i;
    if (last < 0)
        return names;
    unsigned char* utf8 = nullptr;
    const int size = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, last)));
    const OpenSslString owned(reinterpret_cast<char*>(utf8));
    ERR_clear_error();
    if (size > 0 && owned) {
        if (auto name = normalize_certificate_name(std::string_view(owned.get(), static_cast<std::size_t>(size))))
            names.push_back(std::move(*name));
    }
    return names;
}

// The TLS usages (of usage_client, usage_server) a certificate's EKU allows. No EKU
// extension, or anyExtendedKeyUsage, allows both. nullopt when the extensions
// themselves are malformed.
std::optional<unsigned> tls_usages(X509* certificate)
{
    if (X509_check_purpose(certificate, -1, 0) != 1) {  // decodes the extensions
        ERR_clear_error();
        return std::nullopt;
    }
    const std::uint32_t eku = X509_get_extended_key_usage(certificate);  // UINT32_MAX: none
    if (eku & XKU_ANYEKU)
        return usage_client | usage_server;
    return eku & (usage_client | usage_server);
}

IdentityResult refusal(Reason reason, std::string detail)
{
    IdentityResult result;
    result.reason = reason;
    result.detail = std::move(detail);
    return result;
}

std::string at_depth(std::string words, int depth)
{
    if (depth > 0)
        words += " (depth " + std::to_string(depth) + ")";
    return words;
}

// Profile B3: the EKU rule applied by us, because OpenSSL's sslclient purpose would
// refuse the serverAuth-only certificates public CAs now issue. Every certificate in
// `chain` (the first `count`) narrows the usages `wanted`; as with OpenSSL's own
// purpose check, a CA restricted to other usages restricts its leaves too.
std::optional<IdentityResult> check_purpose(STACK_OF(X509) * chain, int count, unsigned wanted)
{
    const unsigned asked = wanted;
    for (int depth = 0; depth < count; ++depth) {
        const auto usages = tls_usages(sk_X509_value(chain, depth));
        if (!usages)
            return refusal(Reason::cert_invalid, at_depth("malformed certificate extensions", depth));
        wanted &= *usages;
        if (wanted == 0) {
            const char* words = asked == usage_server ? "extended key usage does not allow TLS server authentication"
                                : asked == usage_client
                                    ? "extended key usage does not allow TLS client authentication"
                                    : "extended key usage allows neither TLS client nor server authentication";
            return refusal(Reason::cert_purpose, at_depth(words, depth));
        }
    }
    return std::nullopt;
}

Reason reason_for_verify_error(int error)
{
    switch (error) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return Reason::cert_expired;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return Reason::cert_not_yet_valid;
    case X509_V_ERR_CERT_REVOKED:
        return Reason::cert_revoked;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        return Reason::untrusted_issuer;
    case X509_V_ERR_INVALID_PURPOSE:
        return Reason::cert_purpose;
    // Our tls.crl file cannot answer for this chain: the fault is ours, so the refusal
    // is temporary (a 5xx would bounce every sender's mail until the file is fixed).
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
    case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
    case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
        return Reason::crl_stale;
    case X509_V_ERR_UNABLE_TO_GET_CRL:
    case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
    case X509_V_ERR_DIFFERENT_CRL_SCOPE:
    case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
    case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
        return Reason::crl_missing;
    default:
        return Reason::cert_invalid;
    }
}

// With CRL_CHECK_ALL OpenSSL wants a CRL for every CA in the chain. We insist on one
// for the leaf only (fail closed where it matters: the client itself) and check a CA
// certificate against its issuer's CRL when the file has one.
int tolerate_missing_ca_crl(int ok, X509_STORE_CTX* ctx)
{
    if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_UNABLE_TO_GET_CRL &&
        X509_STORE_CTX_get_error_depth(ctx) > 0) {
        X509_STORE_CTX_set_error(ctx, X509_V_OK);
        return 1;
    }
    return ok;
}

struct ChainCheck {
    X509StackPtr verified;  // set on success: leaf first, trust anchor last
    Reason reason = Reason::none;
    std::string detail;
};

ChainCheck verify_chain(X509_STORE* store, STACK_OF(X509) * presented, std::time_t now, bool check_crl)
{
    ChainCheck check;
    const X509StoreCtxPtr ctx(X509_STORE_CTX_new());
    // The whole presented chain is the untrusted pool, as libssl itself passes it;
    // nothing in it becomes a trust anchor.
    if (!ctx || X509_STORE_CTX_init(ctx.get(), store, sk_X509_value(presented, 0), presented) != 1) {
        check.reason = Reason::cert_invalid;
        check.detail = "cannot set up verification: " + take_openssl_error();
        return check;
    }
    // No purpose is set: the EKU rule is ours (check_purpose), see profile B3.
    X509_STORE_CTX_set_time(ctx.get(), 0, now);
    if (check_crl) {
        X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
        X509_STORE_CTX_set_verify_cb(ctx.get(), tolerate_missing_ca_crl);
    }
    const int rc = X509_verify_cert(ctx.get());
    const int error = X509_STORE_CTX_get_error(ctx.get());
    const int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    if (rc == 1) {
        check.verified.reset(X509_STORE_CTX_get1_chain(ctx.get()));
        ERR_clear_error();
        if (!check.verified) {
            check.reason = Reason::cert_invalid;
            check.detail = "out of memory";
        }
        return check;
    }
    if (error == X509_V_OK) {  // an internal failure rather than a verdict
        check.reason = Reason::cert_invalid;
        check.detail = "verification failed: " + take_openssl_error();
        return check;
    }
    ERR_clear_error();
    check.reason = reason_for_verify_error(error);
    check.detail = at_depth(X509_verify_cert_error_string(error), depth);
    return check;
}

// The identity of an accepted leaf; cert_no_name when it names no host.
IdentityResult accept(X509* leaf, TrustKind trust, const std::string& network)
{
    Identity identity = describe_certificate(leaf);
    if (identity.names.empty())
        return refusal(Reason::cert_no_name, "neither a SAN dNSName nor a host name as subject CN");
    identity.trust = trust;
    identity.private_network = network;
    IdentityResult result;
    result.identity = std::move(identity);
    return result;
}

// "ab:CD:..." or "abcd..." as 64 lower-case hex digits; nullopt when it is not one.
std::optional<std::string> normalize_fingerprint(std::string_view text)
{
    std::string out;
    for (char c : text) {
        if (c == ':')
            continue;
        if (c >= 'A' && c <= 'F')
            c = static_cast<char>(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return std::nullopt;
        out += c;
    }
    if (out.size() != 64)
        return std::nullopt;
    return out;
}

} // namespace

// ---------------------------------------------------------------- TrustStore

struct TrustStore::Impl {
    struct NamedStore {
        std::string network;
        X509StorePtr store;
    };
    struct Pin {
        std::string network;
        std::string sha256;
        std::vector<IpNetwork> from;
    };

    X509StorePtr public_store;
    std::vector<NamedStore> private_stores;
    std::vector<Pin> pins;
    bool check_crl = false;
    bool require_client_eku = false;

    unsigned client_usages() const { return require_client_eku ? usage_client : usage_client | usage_server; }

    // Accepted chains, per store. Not used with CRLs: a CRL has its own expiry, and a
    // verdict must not outlive the list it was checked against.
    mutable detail::VerificationCache cache;

    IdentityResult verify_with_ca(X509_STORE* store, STACK_OF(X509) * chain, std::time_t now, TrustKind trust,
                                  const std::string& network) const
    {
        std::optional<std::string> key;
        if (!check_crl) {
            key = detail::VerificationCache::key(chain, (trust == TrustKind::public_ca ? "public:" : "private:") +
                                                            network);
            if (key)
                if (auto known = cache.find(*key, now))
                    return *known;
        }
        const ChainCheck check = verify_chain(store, chain, now, check_crl);
        if (!check.verified)
            return refusal(check.reason, check.detail);
        if (auto refused = check_purpose(check.verified.get(), sk_X509_num(check.verified.get()), client_usages()))
            return *refused;
        IdentityResult result = accept(sk_X509_value(chain, 0), trust, network);
        if (key)
            if (const auto until = detail::earliest_expiry(check.verified.get()))
                cache.remember(*key, result, now, *until);
        return result;
    }

    // A pinned certificate is its own trust anchor: the fingerprint replaces the chain,
    // nothing else is waived (draft s3.1: valid dates; profile B2, B3: a name, a usage).
    IdentityResult verify_pinned(STACK_OF(X509) * chain, std::time_t now, const std::string& network) const
    {
        X509* leaf = sk_X509_value(chain, 0);
        const int starts = X509_cmp_time(X509_get0_notBefore(leaf), &now);
        const int ends = X509_cmp_time(X509_get0_notAfter(leaf), &now);
        if (starts == 0 || ends == 0)
            return refusal(Reason::cert_invalid, "malformed validity dates");
        if (starts > 0)
            return refusal(Reason::cert_not_yet_valid, X509_verify_cert_error_string(X509_V_ERR_CERT_NOT_YET_VALID));
        if (ends < 0)
            return refusal(Reason::cert_expired, X509_verify_cert_error_string(X509_V_ERR_CERT_HAS_EXPIRED));
        if (auto refused = check_purpose(chain, 1, client_usages()))
            return *refused;
        return accept(leaf, TrustKind::pinned, network);
    }
};

TrustStore::TrustStore() : impl_(std::make_unique<Impl>()) {}
TrustStore::~TrustStore() = default;

std::shared_ptr<const TrustStore> TrustStore::load(const TrustOptions& options)
{
    auto trust = std::make_shared<TrustStore>();
    Impl& impl = *trust->impl_;
    impl.require_client_eku = options.require_client_eku;

    std::vector<X509CrlPtr> crls;
    if (!options.crl_file.empty()) {
        crls = load_crls(options.crl_file, "tls.crl");
        impl.check_crl = true;
    }
    const auto add_crls = [&crls](X509_STORE* store) {
        for (const auto& crl : crls)
            if (X509_STORE_add_crl(store, crl.get()) != 1)
                throw std::runtime_error("X509_STORE_add_crl: " + take_openssl_error());
    };

    impl.public_store = new_store();
    std::vector<X509Ptr> public_cas;
    for (const auto& file : options.public_ca_files)
        for (auto& certificate : load_certificates(file, "tls.trusted-ca")) {
            add_certificate(impl.public_store.get(), certificate.get());
            public_cas.push_back(std::move(certificate));
        }
    add_crls(impl.public_store.get());

    // Draft s7: a private CA is "never a CA trusted outside" its network. Trusting it
    // publicly as well would let its customers pass as public peers, so refuse.
    const auto add_private_store = [&](const std::string& network, const std::vector<std::string>& files,
                                       const std::string& key) {
        auto store = new_store();
        for (const auto& file : files)
            for (const auto& certificate : load_certificates(file, key)) {
                for (const auto& public_ca : public_cas)
                    if (X509_cmp(public_ca.get(), certificate.get()) == 0)
                        throw ConfigError(file, 0, key,
                                          "this CA is also in tls.trusted-ca; a private CA must not be trusted "
                                          "on public listeners");
                add_certificate(store.get(), certificate.get());
            }
        add_crls(store.get());
        impl.private_stores.push_back({network, std::move(store)});
    };
    if (!options.private_ca_files.empty())
        add_private_store("private", options.private_ca_files, "tls.private-ca");
    for (const auto& network : options.private_networks) {
        const std::string key = "private-network " + network.name;
        if (!network.ca_files.empty())
            add_private_store(network.name, network.ca_files, key);
        for (const auto& pin : network.pins) {
            const auto sha256 = normalize_fingerprint(pin.sha256);
            if (!sha256)
                throw ConfigError("", 0, key, "pinned certificate \"" + printable(pin.sha256) +
                                                  "\" is not a SHA-256 fingerprint (64 hex digits)");
            impl.pins.push_back({network.name, *sha256, pin.from});
        }
    }
    return trust;
}

IdentityResult TrustStore::verify_client(STACK_OF(X509) * chain, ListenerKind listener, const IpAddress& peer,
                                         std::time_t now) const
{
    if (!chain || sk_X509_num(chain) <= 0)
        return refusal(Reason::no_client_cert, "the client presented no certificate");
    X509* leaf = sk_X509_value(chain, 0);
    if (!leaf)
        return refusal(Reason::cert_invalid, "empty certificate in the chain");

    if (listener == ListenerKind::public_network)
        return impl_->verify_with_ca(impl_->public_store.get(), chain, now, TrustKind::public_ca, {});

    const std::string fingerprint = sha256_hex(leaf);
    bool pinned_elsewhere = false;
    for (const auto& pin : impl_->pins) {
        if (pin.sha256 != fingerprint)
            continue;
        for (const auto& network : pin.from)
            if (network.contains(peer))
                return impl_->verify_pinned(chain, now, pin.network);
        pinned_elsewhere = true;
    }

    std::optional<IdentityResult> refused;
    for (const auto& named : impl_->private_stores) {
        IdentityResult result = impl_->verify_with_ca(named.store.get(), chain, now, TrustKind::private_ca, named.network);
        if (result.ok())
            return result;
        // A store in which the chain reached its anchor says more than "untrusted"
        // from the stores of other networks.
        if (!refused || (refused->reason == Reason::untrusted_issuer && result.reason != Reason::untrusted_issuer))
            refused = std::move(result);
    }
    if (pinned_elsewhere)
        return refusal(Reason::pin_wrong_network, "pinned certificate used from " + peer.str() +
                                                      ", outside the networks it is valid from");
    if (refused)
        return *refused;
    return refusal(Reason::untrusted_issuer, "no private CA or pinned certificate is configured");
}

IdentityResult TrustStore::verify_client_der(const std::vector<std::string>& der_chain, ListenerKind listener,
                                             const IpAddress& peer, std::time_t now) const
{
    if (der_chain.empty())
        return refusal(Reason::no_client_cert, "the client presented no certificate");
    const X509StackPtr chain(sk_X509_new_null());
    if (!chain)
        throw std::bad_alloc();
    for (std::size_t i = 0; i < der_chain.size(); ++i) {
        X509Ptr certificate = read_der_object<X509Ptr>(der_chain[i], d2i_X509);
        if (!certificate)
            return refusal(Reason::cert_invalid, "certificate " + std::to_string(i) + " of the chain is not DER");
        if (sk_X509_push(chain.get(), certificate.get()) <= 0)
            throw std::bad_alloc();
        certificate.release();  // the stack owns it now
    }
    return verify_client(chain.get(), listener, peer, now);
}

IdentityResult TrustStore::verify_server(STACK_OF(X509) * chain, std::string_view expected_name,
                                         std::time_t now) const
{
    if (!chain || sk_X509_num(chain) <= 0 || !sk_X509_value(chain, 0))
        return refusal(Reason::server_cert_invalid, "the server presented no certificate");
    const ChainCheck check = verify_chain(impl_->public_store.get(), chain, now, false);
    if (!check.verified)
        return refusal(Reason::server_cert_invalid, check.detail);
    if (auto refused = check_purpose(check.verified.get(), sk_X509_num(check.verified.get()), usage_server))
        return refusal(Reason::server_cert_invalid, refused->detail);

    Identity identity = describe_certificate(sk_X509_value(chain, 0));
    if (!server_name_matches(identity.names, expected_name)) {
        std::string named;
        for (const auto& name : identity.names)
            named += (named.empty() ? "" : ", ") + name;
        return refusal(Reason::server_name_mismatch, "certificate names " + (named.empty() ? "no host" : named) +
                                                         ", not " + printable(expected_name));
    }
    IdentityResult result;
    result.identity = std::move(identity);
    return result;
}

X509_STORE* TrustStore::public_store() const
{
    return impl_->public_store.get();
}

// ---------------------------------------------------------------- free functions

Identity describe_certificate(X509* certificate)
{
    Identity identity;
    if (!certificate)
        return identity;
    identity.names = certificate_names(certificate);
    identity.subject = rfc2253(X509_get_subject_name(certificate));
    identity.issuer = rfc2253(X509_get_issuer_name(certificate));
    identity.serial = serial_hex(certificate);
    identity.sha256 = sha256_hex(certificate);
    identity.not_before = to_time_t(X509_get0_notBefore(certificate));
    identity.not_after = to_time_t(X509_get0_notAfter(certificate));
    return identity;
}

X509Ptr load_certificate_file(const std::string& path)
{
    return std::move(load_certificates(path, {}).front());
}

X509StackPtr peer_certificate_chain(SSL* ssl)
{
    X509StackPtr chain(sk_X509_new_null());
    if (!chain)
        throw std::bad_alloc();
    X509* leaf = ssl ? SSL_get0_peer_certificate(ssl) : nullptr;
    if (!leaf)
        return chain;
    const auto push = [&chain](X509* certificate) {
        if (X509_up_ref(certificate) != 1)
            throw std::bad_alloc();
        if (sk_X509_push(chain.get(), certificate) <= 0) {
            X509Ptr drop(certificate);  // give back the reference just taken
            throw std::bad_alloc();
        }
    };
    push(leaf);
    // A client's view already starts with the leaf; a server's does not have it.
    // After session resumption OpenSSL keeps only the leaf, so the rest may be empty.
    STACK_OF(X509)* rest = SSL_get_peer_cert_chain(ssl);
    for (int i = 0; rest && i < sk_X509_num(rest); ++i) {
        X509* certificate = sk_X509_value(rest, i);
        if (X509_cmp(certificate, leaf) != 0)
            push(certificate);
    }
    return chain;
}

} // namespace amtp
