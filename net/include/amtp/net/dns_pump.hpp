// Drives the core's asynchronous Resolver from a Boost.Asio loop: waits for its file
// descriptor to become readable and for the earliest lookup deadline, then lets it
// run the finished callbacks.
#pragma once

#include "amtp/resolver.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace amtp::net {

class DnsPump {
public:
    DnsPump(boost::asio::io_context& io, Resolver& resolver);
    ~DnsPump();
    // Call after starting lookups: arms the waits while any lookup is pending.
    void arm();
    Resolver& resolver() { return resolver_; }

private:
    void run();
    Resolver& resolver_;
    boost::asio::posix::stream_descriptor descriptor_;
    boost::asio::steady_timer timer_;
    bool waiting_fd_ = false;
    bool waiting_timer_ = false;
};

} // namespace amtp::net
