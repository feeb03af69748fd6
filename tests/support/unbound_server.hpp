// A real DNS server for tests: /usr/sbin/unbound on 127.0.0.1 at a free port, serving
// the given records authoritatively from a fresh directory, stopped (and reaped) by
// the destructor. It never contacts anything beyond loopback: names outside its zones
// are REFUSED and its outgoing queries can only leave from 127.0.0.1.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace amtp::test {

struct UnboundConfig {
    // Zones answered from local data only ("static": an unknown name is NXDOMAIN, a
    // known name without the asked type is NODATA). A libunbound client forwarding to
    // this server needs no nodefault zone for them (the Resolver lifts libunbound's
    // built-in zones when a forwarder is named); tests that still list zones() there
    // exercise dns.nodefault-zone.
    std::vector<std::string> zones = {"test.", "127.in-addr.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa."};
    // Resource records in zone-file text: "mx.a.test. 300 IN A 127.0.0.2".
    std::vector<std::string> local_data;
    // "127.0.0.2 mx.a.test." (address, name): unbound writes the PTR record.
    std::vector<std::string> local_data_ptr;
    // Reverse zones that answer SERVFAIL at once, e.g. "66.0.0.127.in-addr.arpa.":
    // served unsigned under a made-up trust anchor, so validation fails (dns.md).
    std::vector<std::string> servfail_zones;
};

class UnboundServer {
public:
    // Starts unbound and waits until it answers; throws std::runtime_error (with
    // unbound's log) when it cannot.
    explicit UnboundServer(UnboundConfig config);
    ~UnboundServer();
    UnboundServer(const UnboundServer&) = delete;
    UnboundServer& operator=(const UnboundServer&) = delete;

    std::uint16_t port() const { return port_; }
    // For ResolverOptions::forwarder: "127.0.0.1@PORT".
    std::string forwarder() const;
    // The zones this server serves (for ResolverOptions::nodefault_zones).
    const std::vector<std::string>& zones() const { return config_.zones; }
    const std::string& directory() const { return dir_; }

private:
    bool start_once(std::string& why);  // false: try again on another port
    void stop() noexcept;

    UnboundConfig config_;
    std::string dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

// A UDP port on 127.0.0.1 that is bound but never read: a DNS query sent there gets no
// answer and no ICMP refusal, so a resolver forwarding to it times out. The port stays
// bound for the object's lifetime, so nothing else can start listening on it.
class SilentPort {
public:
    SilentPort();
    ~SilentPort();
    SilentPort(const SilentPort&) = delete;
    SilentPort& operator=(const SilentPort&) = delete;

    std::uint16_t port() const { return port_; }
    std::string forwarder() const;  // "127.0.0.1@PORT"

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

// A port on 127.0.0.1 where nothing listens (found by binding port 0, then closed):
// a query sent there is refused by the kernel, so no DNS answer ever comes back.
std::uint16_t unused_port();

} // namespace amtp::test
