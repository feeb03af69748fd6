// Verdicts of chain verification, remembered per presented chain. A mail server sees
// the same peers again and again, and verifying a chain (two or more signature checks
// and the chain building around them) is a large part of an AMTP session's CPU. Only
// acceptances are kept, never longer than the earliest expiry in the verified chain nor
// than `max_age`, and never across a reload (the cache belongs to one TrustStore, which
// a reload replaces). Thread-safe: adapters verify from worker threads.
#pragma once

#include "amtp/tls_identity.hpp"

#include <ctime>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace amtp::detail {

class VerificationCache {
public:
    static constexpr std::size_t max_entries = 4096;
    static constexpr std::time_t max_age = 300;

    // The key of `chain` (leaf first, as presented) checked against the store named
    // `store`: the store's name and every certificate's SHA-256, in order.
    static std::optional<std::string> key(STACK_OF(X509) * chain, const std::string& store);

    std::optional<IdentityResult> find(const std::string& key, std::time_t now) const;
    // `until`: the earliest notAfter of the verified chain, anchor included.
    void remember(const std::string& key, const IdentityResult& accepted, std::time_t now, std::time_t until);

private:
    struct Entry {
        IdentityResult result;
        std::time_t from = 0;
        std::time_t until = 0;
    };
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Entry> entries_;
};

// The earliest notAfter of a chain as a time_t (nullopt when a date cannot be read).
std::optional<std::time_t> earliest_expiry(STACK_OF(X509) * chain);

} // namespace amtp::detail
