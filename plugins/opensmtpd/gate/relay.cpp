#include "gate/relay.hpp"

#include "gate/proxy_header.hpp"
#include "amtp/net/tls_context.hpp"

#include "amtp/reply.hpp"

#include <boost/asio/write.hpp>

#include <algorithm>
#include <ctime>

namespace amtp::opensmtpd {

namespace asio = boost::asio;
using asio::ip::tcp;

Relay::Relay(tcp::socket socket, asio::ssl::context& tls, ListenerKind kind, const RelayContext& context,
             Registry& registry, std::string id, std::function<void(Relay*)> closed)
    : client_(std::move(socket), tls), server_(client_.get_executor()), timer_(client_.get_executor()),
      ack_timer_(client_.get_executor()), kind_(kind),
      context_(context), registry_(registry), id_(std::move(id)), closed_(std::move(closed))
{
}

void Relay::start()
{
    boost::system::error_code ec;
    const auto remote = client_.lowest_layer().remote_endpoint(ec);
    local_ = client_.lowest_layer().local_endpoint(ec);
    const auto address = ec ? std::nullopt : IpAddress::parse(remote.address().to_string());
    if (!address) {
        finish("no peer address");
        return;
    }
    key_ = SessionKey{*address, remote.port()};
    pipeline_.hold_acks(context_.notices != nullptr);
    if (!context_.ehlo_mpc_line.empty())
        pipeline_.add_ehlo_keyword(context_.ehlo_mpc_line);
    // A silent peer must not hold a slot through the handshake.
    arm_timer(context_.handshake_timeout);
    client_.async_handshake(asio::ssl::stream_base::server,
                            [self = shared_from_this()](const boost::system::error_code& e) { self->on_handshake(e); });
}

void Relay::on_handshake(const boost::system::error_code& ec)
{
    if (finished_)
        return;
    if (ec) {
        if (context_.log)
            context_.log(LogLine("tls").kv("gate", id_).kv("peer", key_.str()).kv("result", "fail")
                             .kv("reason", reason_name(Reason::tls_handshake)).kv("detail", ec.message()).str());
        finish("handshake failed");
        return;
    }
    SSL* ssl = client_.native_handle();
    Registration r;
    r.key = key_;
    r.listener = kind_;
    r.tls.version = net::tls_version(ssl);
    r.tls.cipher = net::tls_cipher(ssl);
    const X509StackPtr chain = peer_certificate_chain(ssl);
    if (!chain || sk_X509_num(chain.get()) == 0)
        r.tls.identity.reason = Reason::no_client_cert;
    else
        r.tls.identity = context_.trust->verify_client(chain.get(), kind_, key_.address, std::time(nullptr));
    if (context_.log) {
        LogLine line("tls");
        line.kv("gate", id_).kv("peer", key_.str()).kv("listener", kind_ == ListenerKind::public_network ? "public" : "private");
        line.kv("tls", r.tls.version).kv("result", r.tls.identity.ok() ? "pass" : "fail");
        line.kv("reason", r.tls.identity.ok() ? "none" : reason_name(r.tls.identity.reason));
        if (r.tls.identity.ok())
            line.kv("subject", r.tls.identity.identity->subject).kv("sha256", r.tls.identity.identity->sha256);
        else if (!r.tls.identity.detail.empty())
            line.kv("detail", r.tls.identity.detail);
        context_.log(line.str());
    }
    // Registered before smtpd can see the connection, so the filter normally has the
    // identity when link-connect arrives (it also waits a moment for it).
    // The token binds the registration to the connection the gate makes (below): the
    // address and port alone could be named by anyone who can reach smtpd's port.
    r.token = new_gate_token();
    pipeline_.send_first(gate_token_line(r.token));
    registry_.add(r);
    registered_ = true;
    arm_timer(context_.idle_timeout);
    server_.async_connect(context_.smtpd, [self = shared_from_this()](const boost::system::error_code& e) {
        if (self->finished_)
            return;
        if (e) {
            if (self->context_.log)
                self->context_.log(LogLine("relay").kv("gate", self->id_).kv("result", "fail")
                                       .kv("reason", reason_name(Reason::smtpd_unreachable)).kv("detail", e.message()).str());
            // smtpd is not there: the gate greets in its place, with a 421 as it closes.
            self->client_out_ += reply_for(Reason::smtpd_unreachable).wire();
            self->server_closed_ = true;
            self->flush();
            return;
        }
        boost::system::error_code ignored;
        self->server_.set_option(tcp::no_delay(true), ignored);
        const auto dst = IpAddress::parse(self->local_.address().to_string());
        self->server_out_ += proxy_v2_header(self->key_.address, self->key_.port, dst ? *dst : self->key_.address,
                                             self->local_.port());
        self->relaying_ = true;
        self->flush();
    });
}

Flow Relay::flow() const
{
    Flow f;
    f.client_unsent = client_out_.size() + (client_busy_ ? client_writing_.size() : 0);
    f.server_unsent = server_out_.size() + (server_busy_ ? server_writing_.size() : 0);
    f.client_backlog = pipeline_.client_backlog();
    f.server_backlog = pipeline_.server_backlog();
    return f;
}

// Reads are started from flush(), whenever the flow allows them: a side whose output
// is not taken stops the other side's input, so nothing grows without bound.
void Relay::read_client()
{
    if (reading_client_ || finished_ || !relaying_ || !flow().read_client())
        return;
    reading_client_ = true;
    client_.async_read_some(asio::buffer(client_buffer_), [self = shared_from_this()](const boost::system::error_code& ec,
                                                                                       std::size_t n) {
        self->reading_client_ = false;
        if (self->finished_)
            return;
        if (ec) {
            self->finish(ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ? "client closed" : ec.message());
            return;
        }
        if (self->flow().client_input_is_activity())
            self->arm_timer(self->context_.idle_timeout);
        self->pipeline_.from_client(std::string_view(self->client_buffer_.data(), n));
        self->flush();
    });
}

void Relay::read_server()
{
    if (reading_server_ || finished_ || !relaying_ || server_closed_ || !flow().read_server())
        return;
    reading_server_ = true;
    server_.async_read_some(asio::buffer(server_buffer_), [self = shared_from_this()](const boost::system::error_code& ec,
                                                                                       std::size_t n) {
        self->reading_server_ = false;
        if (self->finished_)
            return;
        if (ec) {
            // smtpd closed (QUIT, 421, timeout): pass on what it said, then close.
            self->server_closed_ = true;
            self->flush();
            return;
        }
        self->pipeline_.from_server(std::string_view(self->server_buffer_.data(), n));
        self->flush();
    });
}

void Relay::watch_delivery()
{
    if (watching_ || !pipeline_.held_ack() || !context_.notices)
        return;
    watching_ = true;
    const std::string id = pipeline_.held_ack()->message_id;
    auto release = [self = shared_from_this(), id]() {
        if (!self->watching_)
            return;
        self->watching_ = false;
        self->ack_timer_.cancel();
        self->context_.notices->unwatch(id);
        self->pipeline_.release_ack();
        self->flush();
    };
    ack_timer_.expires_after(context_.ack_wait);
    ack_timer_.async_wait([release](const boost::system::error_code& ec) {
        if (!ec)
            release();
    });
    context_.notices->watch(id, std::max(1u, pipeline_.held_ack()->recipients), release);
}

void Relay::flush()
{
    if (finished_)
        return;
    watch_delivery();
    server_out_ += pipeline_.take_for_server();
    client_out_ += pipeline_.take_for_client();
    if (pipeline_.command_overflow() && !server_closed_) {
        client_out_ += reply_for(Reason::line_too_long).wire();
        server_closed_ = true; // nothing more goes to smtpd; close once the reply is out
        server_out_.clear();
    }
    write_server();
    write_client();
    read_client();
    read_server();
}

void Relay::write_server()
{
    if (server_busy_ || server_out_.empty() || finished_ || server_closed_)
        return;
    server_busy_ = true;
    server_writing_ = std::exchange(server_out_, std::string{});
    asio::async_write(server_, asio::buffer(server_writing_), [self = shared_from_this()](const boost::system::error_code& ec,
                                                                                          std::size_t) {
        self->server_busy_ = false;
        if (ec)
            self->server_closed_ = true;
        self->flush(); // writes what came meanwhile, and reads what may be read again
    });
}

void Relay::write_client()
{
    if (finished_ || client_busy_)
        return;
    if (client_out_.empty()) {
        if (server_closed_)
            finish("smtpd closed");
        return;
    }
    client_busy_ = true;
    client_writing_ = std::exchange(client_out_, std::string{});
    asio::async_write(client_, asio::buffer(client_writing_), [self = shared_from_this()](const boost::system::error_code& ec,
                                                                                          std::size_t) {
        self->client_busy_ = false;
        if (ec) {
            self->finish(ec.message());
            return;
        }
        // The client takes what it is sent: a sign of life.
        self->arm_timer(self->context_.idle_timeout);
        self->flush();
    });
}

void Relay::arm_timer(std::chrono::seconds after)
{
    if (finished_)
        return;
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec)
            self->finish("timeout");
    });
}

void Relay::stop()
{
    finish("gate stopping");
}

void Relay::finish(std::string_view why)
{
    if (finished_)
        return;
    finished_ = true;
    timer_.cancel();
    ack_timer_.cancel();
    if (watching_ && context_.notices && pipeline_.held_ack())
        context_.notices->unwatch(pipeline_.held_ack()->message_id);
    watching_ = false;
    boost::system::error_code ignored;
    client_.lowest_layer().shutdown(tcp::socket::shutdown_both, ignored);
    client_.lowest_layer().close(ignored);
    server_.shutdown(tcp::socket::shutdown_both, ignored);
    server_.close(ignored);
    if (registered_)
        registry_.remove(key_);
    if (context_.log)
        context_.log(LogLine("disconnect").kv("gate", id_).kv("peer", key_.str()).kv("why", why).str());
    closed_(this);
}

} // namespace amtp::opensmtpd
