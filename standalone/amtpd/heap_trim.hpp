// Gives freed heap memory back to the system after bursts of connections. A TLS
// handshake allocates and frees far more than an idle session keeps (about 6 KiB, see
// docs/PERFORMANCE.md); glibc keeps the freed pages, scattered between live sessions,
// so without this an idle server's resident size reflects its busiest second, not the
// sessions it holds.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>

namespace amtp::amtpd {

class HeapTrimmer {
public:
    explicit HeapTrimmer(boost::asio::io_context& io, std::chrono::milliseconds delay = std::chrono::seconds(1));
    // A connection began, finished its handshake or ended: trim `delay` later, and
    // again a `delay` after that while activity goes on (at most one trim per delay).
    void activity();

private:
    void arm();

    boost::asio::steady_timer timer_;
    std::chrono::milliseconds delay_;
    bool armed_ = false;
    bool dirty_ = false;
};

} // namespace amtp::amtpd
