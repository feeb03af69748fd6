// "Acknowledge after delivery", as amtpd does: amtp-opensmtpd-deliver (smtpd's mda)
// sends one datagram "D <smtpd message id>" per stored recipient to the gate's
// abstract Unix socket; a relay holding smtpd's 250 for that message releases it
// once every recipient is stored, or after a bound (then the 250 still means what
// smtpd says: the message is in its queue). A forged datagram can only make a 250
// come earlier, never turn a refusal into an acceptance.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/datagram_protocol.hpp>

#include <array>
#include <deque>
#include <functional>
#include <map>
#include <string>

namespace amtp::opensmtpd {

class DeliveryNotices {
public:
    // `name` without the leading NUL of the abstract namespace.
    DeliveryNotices(boost::asio::io_context& io, const std::string& name);
    // Calls `done` once `recipients` deliveries of `message_id` were reported.
    void watch(const std::string& message_id, unsigned recipients, std::function<void()> done);
    void unwatch(const std::string& message_id);
    void close();

private:
    void receive();
    void count(const std::string& message_id);

    boost::asio::local::datagram_protocol::socket socket_;
    std::array<char, 256> buffer_{};
    std::map<std::string, unsigned> delivered_;
    std::deque<std::string> order_;                 // to forget old ids
    struct Watcher {
        unsigned needed;
        std::function<void()> done;
    };
    std::map<std::string, Watcher> watchers_;
};

} // namespace amtp::opensmtpd
