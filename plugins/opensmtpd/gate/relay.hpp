// One client connection through the gate: AMTP's implicit TLS with the client, the
// identity decided by the core's TrustStore and registered with the filter, then the
// plaintext dialogue relayed to smtpd's loopback proxy-v2 listener through Pipeline.
// A refused identity is still relayed: the filter answers its EHLO with the precise
// 504 5.7.1 reason, exactly as amtpd does (a bare TLS alert would tell nobody why).
#pragma once

#include "common/registration.hpp"
#include "gate/pipeline.hpp"
#include "gate/delivery_notices.hpp"
#include "gate/registry.hpp"

#include "amtp/log.hpp"
#include "amtp/tls_identity.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace amtp::opensmtpd {

struct RelayContext {
    std::shared_ptr<const TrustStore> trust;
    boost::asio::ip::tcp::endpoint smtpd;   // the loopback proxy-v2 listener
    std::chrono::seconds handshake_timeout{300};
    std::chrono::seconds idle_timeout{900};
    // Hold smtpd's 250 for a message until it is in the Maildir (null: do not).
    DeliveryNotices* notices = nullptr;
    std::chrono::seconds ack_wait{10};
    // The policy's <advertise> list as an EHLO keyword line ("MPC DENY=..."); empty: none.
    std::string ehlo_mpc_line;
    LogSink log;
};

class Relay : public std::enable_shared_from_this<Relay> {
public:
    Relay(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& tls, ListenerKind kind,
          const RelayContext& context, Registry& registry, std::string id, std::function<void(Relay*)> closed);
    void start();
    void stop();

private:
    void on_handshake(const boost::system::error_code& ec);
    void read_client();
    void read_server();
    Flow flow() const;
    void flush();
    void write_client();
    void write_server();
    void arm_timer(std::chrono::seconds after);
    void watch_delivery();
    void finish(std::string_view why);

    boost::asio::ssl::stream<boost::asio::ip::tcp::socket> client_;
    boost::asio::ip::tcp::socket server_;
    boost::asio::steady_timer timer_;
    boost::asio::steady_timer ack_timer_;
    bool watching_ = false;
    ListenerKind kind_;
    const RelayContext& context_;
    Registry& registry_;
    std::string id_;
    std::function<void(Relay*)> closed_;
    SessionKey key_;
    boost::asio::ip::tcp::endpoint local_;
    Pipeline pipeline_;
    std::array<char, 16384> client_buffer_{};
    std::array<char, 16384> server_buffer_{};
    std::string client_out_, client_writing_;
    std::string server_out_, server_writing_;
    bool client_busy_ = false;
    bool server_busy_ = false;
    bool reading_client_ = false;
    bool reading_server_ = false;
    bool relaying_ = false;      // connected to smtpd: both sides may be read
    bool server_closed_ = false;
    bool registered_ = false;
    bool finished_ = false;
};

} // namespace amtp::opensmtpd
