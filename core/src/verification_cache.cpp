#include "verification_cache.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>

namespace amtp::detail {

std::optional<std::string> VerificationCache::key(STACK_OF(X509) * chain, const std::string& store)
{
    std::string k = store;
    k.push_back('\0');
    const int n = sk_X509_num(chain);
    for (int i = 0; i < n; ++i) {
        X509* certificate = sk_X509_value(chain, i);
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int length = 0;
        if (!certificate || X509_digest(certificate, EVP_sha256(), digest, &length) != 1)
            return std::nullopt;
        k.append(reinterpret_cast<const char*>(digest), length);
    }
    return k;
}

std::optional<IdentityResult> VerificationCache::find(const std::string& key, std::time_t now) const
{
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = entries_.find(key);
    // A clock that went back before the verdict was made does not get it either.
    if (it == entries_.end() || now < it->second.from || now >= it->second.until)
        return std::nullopt;
    return it->second.result;
}

void VerificationCache::remember(const std::string& key, const IdentityResult& accepted, std::time_t now,
                                 std::time_t until)
{
    if (!accepted.ok() || until <= now)
        return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (entries_.size() >= max_entries) {
        // Drop what has expired; if that frees nothing, start again (a flood of distinct
        // chains must not grow memory, and the next verdicts are cheap to remake).
        for (auto it = entries_.begin(); it != entries_.end();)
            it = now >= it->second.until ? entries_.erase(it) : std::next(it);
        if (entries_.size() >= max_entries)
            entries_.clear();
    }
    entries_[key] = Entry{accepted, now, std::min(until, now + max_age)};
}

std::optional<std::time_t> earliest_expiry(STACK_OF(X509) * chain)
{
    std::optional<std::time_t> earliest;
    const int n = sk_X509_num(chain);
    for (int i = 0; i < n; ++i) {
        X509* certificate = sk_X509_value(chain, i);
        std::tm tm{};
        if (!certificate || ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &tm) != 1)
            return std::nullopt;
        const std::time_t t = timegm(&tm);
        if (!earliest || t < *earliest)
            earliest = t;
    }
    return earliest;
}

} // namespace amtp::detail
