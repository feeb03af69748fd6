// Admission of new connections under limits.max-connections and
// limits.max-connections-per-ip, decided before any TLS work: a connection past them is
// closed at once (on an implicit-TLS port no SMTP reply can be written in clear, and a
// handshake for a connection that will be refused anyway would let a flood cost a
// private-key operation each). One count for every front-end that accepts connections
// itself (amtpd, the OpenSMTPD gate).
#pragma once

#include "amtp/address.hpp"
#include "amtp/settings.hpp"

#include <cstddef>
#include <map>
#include <string_view>

namespace amtp {

class ConnectionLimits {
public:
    enum class Refusal { none, max_connections, max_connections_per_ip };

    struct Admission {
        Refusal refusal = Refusal::none;
        IpAddress key; // what the peer counts against (connection_limit_key): release() it
        explicit operator bool() const { return refusal == Refusal::none; }
    };

    explicit ConnectionLimits(const Limits& limits) { configure(limits); }
    // A reload: new limits for new connections; the open ones stay counted.
    void configure(const Limits& limits) { limits_ = limits; }

    // Counts the connection when it is admitted.
    Admission admit(const IpAddress& peer);
    // Ends an admitted connection; `key` is its Admission's (the prefix length may have
    // changed since). A key never admitted changes nothing.
    void release(const IpAddress& key);
    std::size_t total() const { return total_; }

    // The limit's option name, for the log ("max-connections-per-ip").
    static std::string_view name(Refusal r);

private:
    Limits limits_;
    std::size_t total_ = 0;
    std::map<IpAddress, unsigned> per_source_;
};

} // namespace amtp
