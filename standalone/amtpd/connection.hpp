// One AMTP connection: implicit TLS, then the core session's decisions carried out.
#pragma once

#include "amtpd/runtime.hpp"
#include "amtp/server_session.hpp"
#include "amtp/net/tls_context.hpp"
#include "amtp/net/tls_socket.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <memory>
#include <optional>
#include <string>

namespace amtp::amtpd {

class Server;

class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(Server& server, boost::asio::ip::tcp::socket socket, std::shared_ptr<const Runtime> runtime,
               ListenerKind kind, IpAddress peer, std::string session_id);
    void start();
    // Server stopping: 421 as soon as no transaction is in flight.
    void stop();
    const IpAddress& peer() const { return peer_; }

private:
    void on_handshake(const net::TlsSocket::Result& result);
    void pump();
    void read();
    void write();
    void arm_timer(std::chrono::seconds after);
    std::size_t unsent() const { return out_.size() + (writing_ ? writing_buffer_.size() : 0); }
    void finish(std::string_view why);

    Server& server_;
    std::shared_ptr<const Runtime> runtime_;
    ListenerKind kind_;
    IpAddress peer_;
    net::TlsSocket tls_;
    boost::asio::steady_timer timer_;
    ServerSession session_;
    net::TicketBinding ticket_;
    std::array<char, 4096> buffer_{};    // small: thousands of idle sessions each hold one
    std::string out_;
    std::string writing_buffer_;
    bool reading_ = false;
    bool writing_ = false;
    bool closing_ = false;
    bool finished_ = false;
    bool stop_requested_ = false;
    bool started_ = false;
};

} // namespace amtp::amtpd
