// amtpd's event loop: one Boost.Asio io_context, no thread per connection. Listeners
// accept, each connection runs a core ServerSession over an OpenSSL stream, DNS runs
// through the core's libunbound resolver on the same loop, and storage (which blocks
// on fsync) runs on a thread pool whose results are posted back to the loop.
#pragma once

#include "amtpd/heap_trim.hpp"
#include "amtpd/queue_runner.hpp"
#include "amtpd/runtime.hpp"
#include "amtp/connection_limits.hpp"
#include "amtp/queue.hpp"
#include "amtp/log.hpp"
#include "amtp/resolver.hpp"
#include "amtp/net/dns_pump.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

namespace amtp::amtpd {

class Connection;

class Server {
public:
    Server(boost::asio::io_context& io, std::shared_ptr<const Runtime> runtime, LogSink log);
    ~Server();

    // Binds every listener of the settings; throws std::system_error on failure.
    void listen();
    // Stops accepting, lets sessions finish within `grace`, then stops the loop.
    void stop(std::chrono::seconds grace);
    // New certificates and policy for new connections; sessions in flight keep theirs.
    void reload(std::shared_ptr<const Runtime> runtime);
    const Runtime& runtime() const { return *runtime_; }
    // Re-reads the outgoing queue (SIGUSR1, sent by amtpd --queue flush/remove).
    void rescan_queue() { runner_.rescan(); }

    // For connections.
    void lookup_client_names(const IpAddress& address, std::function<void(ReverseDnsResult)> done);
    void store(DeliveryRequest request, std::function<void(Reason, std::string)> done);
    void closed(Connection* connection);
    void handshake_done() { trimmer_.activity(); }
    const LogSink& log() const { return log_; }
    boost::asio::io_context& io() { return io_; }

private:
    struct Listener {
        boost::asio::ip::tcp::acceptor acceptor;
        ListenerKind kind;
        boost::asio::steady_timer backoff;   // accept() paused: out of descriptors
        std::chrono::milliseconds delay{0};
    };
    struct Open {
        std::shared_ptr<Connection> connection;
        IpAddress limit_key;                 // what it counts against in limits_
    };
    void accept(Listener& listener);
    void accepted(Listener& listener, boost::asio::ip::tcp::socket socket);
    void accept_failed(Listener& listener, const boost::system::error_code& ec);
    std::string next_session_id();

    boost::asio::io_context& io_;
    std::shared_ptr<const Runtime> runtime_;
    LogSink log_;
    Resolver resolver_;
    net::DnsPump dns_;
    boost::asio::thread_pool storage_;   // fsync of inbound mail and queue reads: off the loop
    boost::asio::thread_pool delivery_;  // outgoing attempts: never in the way of storage
    Queue queue_;
    QueueRunner runner_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::map<Connection*, Open> connections_;
    ConnectionLimits limits_;
    // Sessions waiting for the PTR verdict of an address already being looked up: a
    // burst of connections from one host makes one lookup, not one each.
    std::map<IpAddress, std::vector<std::function<void(ReverseDnsResult)>>> ptr_waiters_;
    std::uint64_t session_counter_ = 0;
    std::string session_prefix_;
    bool stopping_ = false;
    boost::asio::steady_timer stop_timer_;
    HeapTrimmer trimmer_;
};

} // namespace amtp::amtpd
