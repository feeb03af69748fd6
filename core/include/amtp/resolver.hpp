// DNS through libunbound. Asynchronous by default: the host polls fd() for reading
// and calls process(), which runs the completed callbacks, so any event loop (Asio,
// Node's libuv, a poll() loop in a filter) can drive it. A blocking form serves forked
// hosts such as Exim. A temporary failure (SERVFAIL, timeout, network error) is kept
// apart from a permanent negative answer (NXDOMAIN, NODATA) all the way up: it must
// never become a 5xx.
#pragma once

#include "amtp/address.hpp"
#include "amtp/settings.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace amtp {

enum class DnsStatus { answer, negative, temporary };

const char* dns_status_name(DnsStatus status);

struct DnsResult {
    DnsStatus status = DnsStatus::temporary;
    std::vector<std::string> records;  // PTR/CNAME targets normalised; addresses as text
    bool secure = false;               // DNSSEC validated (only with a trust anchor)
    std::string error;                 // why, when not an answer (for the log line)
    // addresses(): an answer from one of A/AAAA while the other failed temporarily, so
    // an address missing from `records` may exist (forward confirmation must not treat
    // that as a permanent "does not lead back").
    bool partial = false;
};

struct SrvRecord {
    std::uint16_t priority = 0;
    std::uint16_t weight = 0;
    std::uint16_t port = 0;
    std::string target;                // normalised, no trailing dot
};

struct SrvResult {
    DnsStatus status = DnsStatus::temporary;
    std::vector<SrvRecord> targets;    // in RFC 2782 order (priority, then weighted random)
    std::string error;
};

struct ResolverOptions {
    std::string forwarder;             // "addr@port" (dns.resolver); empty: /etc/resolv.conf
    std::string trust_anchor_file;     // dns.trust-anchor: enables DNSSEC validation
    // dns.nodefault-zone: zones libunbound must not answer from its built-in defaults.
    // Needed only without a forwarder: with one, no built-in zone answers at all.
    std::vector<std::string> nodefault_zones;
    std::chrono::milliseconds timeout{5000};  // dns.timeout: then a lookup is temporary
};

// The [dns] settings as resolver options.
ResolverOptions resolver_options(const Settings& settings);

class Resolver {
public:
    // Throws ConfigError when libunbound refuses an option.
    explicit Resolver(const ResolverOptions& options);
    ~Resolver();
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    using Callback = std::function<void(DnsResult)>;
    using SrvCallback = std::function<void(SrvResult)>;

    void async_ptr(const IpAddress& address, Callback done);
    void async_addresses(std::string name, Callback done);       // A and AAAA together
    void async_srv(std::string domain, SrvCallback done);         // _amtp._tcp.<domain>

    int fd() const;                                                // readable: call process()
    // Runs the callbacks of finished lookups and fails those past their deadline; the
    // host also calls it by a timer (see next_deadline).
    void process();
    std::size_t pending() const;
    std::chrono::steady_clock::time_point next_deadline() const;   // max() when idle

    // Blocking forms, for forked hosts; each honours the timeout.
    DnsResult ptr(const IpAddress& address);
    DnsResult addresses(const std::string& name);
    SrvResult srv(const std::string& domain);

    // The loop behind the blocking forms: polls fd() and calls process() until
    // `finished()` is true or nothing is pending (every lookup has a deadline, so it
    // ends). Other pending lookups' callbacks run meanwhile, from this thread.
    void run_until(const std::function<bool()>& finished);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// RFC 2782 ordering: ascending priority; within a priority, weighted random selection
// (weight 0 entries first among equals, as the RFC specifies). `random` returns a value
// uniformly in [0, bound].
std::vector<SrvRecord> order_srv(std::vector<SrvRecord> records,
                                 const std::function<std::uint32_t(std::uint32_t bound)>& random);

} // namespace amtp
