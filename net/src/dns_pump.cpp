#include "amtp/net/dns_pump.hpp"

#include <unistd.h>

namespace amtp::net {

DnsPump::DnsPump(boost::asio::io_context& io, Resolver& resolver)
    // A duplicate, because the descriptor object closes what it holds; the resolver
    // keeps its own.
    : resolver_(resolver), descriptor_(io, ::dup(resolver.fd())), timer_(io)
{
}

DnsPump::~DnsPump()
{
    boost::system::error_code ignored;
    descriptor_.cancel(ignored);
    timer_.cancel();
}

void DnsPump::run()
{
    resolver_.process();
    arm();
}

void DnsPump::arm()
{
    if (resolver_.pending() == 0)
        return;
    if (!waiting_fd_) {
        waiting_fd_ = true;
        descriptor_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                               [this](const boost::system::error_code& ec) {
                                   waiting_fd_ = false;
                                   if (ec != boost::asio::error::operation_aborted)
                                       run();
                               });
    }
    const auto deadline = resolver_.next_deadline();
    if (!waiting_timer_ || timer_.expiry() > deadline) {
        waiting_timer_ = true;
        timer_.expires_at(deadline);
        timer_.async_wait([this](const boost::system::error_code& ec) {
            if (ec == boost::asio::error::operation_aborted)
                return;
            waiting_timer_ = false;
            run();
        });
    }
}

} // namespace amtp::net
