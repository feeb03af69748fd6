#include "gate/delivery_notices.hpp"

#include <stdexcept>

namespace amtp::opensmtpd {

namespace asio = boost::asio;
using asio::local::datagram_protocol;

namespace {
constexpr std::size_t remembered_ids = 10000;
}

DeliveryNotices::DeliveryNotices(asio::io_context& io, const std::string& name) : socket_(io)
{
    boost::system::error_code ec;
    socket_.open(datagram_protocol(), ec);
    if (!ec)
        socket_.bind(datagram_protocol::endpoint(std::string(1, '\0') + name), ec);
    if (ec)
        throw std::runtime_error("cannot bind the delivery notice socket @" + name + ": " + ec.message());
    receive();
}

void DeliveryNotices::close()
{
    boost::system::error_code ignored;
    socket_.close(ignored);
}

void DeliveryNotices::receive()
{
    socket_.async_receive(asio::buffer(buffer_), [this](const boost::system::error_code& ec, std::size_t n) {
        if (ec == asio::error::operation_aborted)
            return;
        if (!ec && n > 2 && buffer_[0] == 'D' && buffer_[1] == ' ') {
            std::string id(buffer_.data() + 2, n - 2);
            while (!id.empty() && (id.back() == '\n' || id.back() == '\r'))
                id.pop_back();
            if (!id.empty() && id.size() <= 32)
                count(id);
        }
        receive();
    });
}

void DeliveryNotices::count(const std::string& id)
{
    if (delivered_.find(id) == delivered_.end()) {
        order_.push_back(id);
        if (order_.size() > remembered_ids) {
            delivered_.erase(order_.front());
            order_.pop_front();
        }
    }
    const unsigned n = ++delivered_[id];
    auto w = watchers_.find(id);
    if (w != watchers_.end() && n >= w->second.needed) {
        auto done = std::move(w->second.done);
        watchers_.erase(w);
        done();
    }
}

void DeliveryNotices::watch(const std::string& id, unsigned recipients, std::function<void()> done)
{
    auto d = delivered_.find(id);
    if (d != delivered_.end() && d->second >= recipients) {
        done();
        return;
    }
    watchers_[id] = Watcher{recipients, std::move(done)};
}

void DeliveryNotices::unwatch(const std::string& id)
{
    watchers_.erase(id);
}

} // namespace amtp::opensmtpd
