#include "amtpd/connection.hpp"

#include "amtpd/server.hpp"
#include "amtp/net/tls_context.hpp"
#include "amtp/reply.hpp"

namespace amtp::amtpd {

namespace asio = boost::asio;

Connection::Connection(Server& server, asio::ip::tcp::socket socket, std::shared_ptr<const Runtime> runtime,
                       ListenerKind kind, IpAddress peer, std::string session_id)
    : server_(server), runtime_(std::move(runtime)), kind_(kind), peer_(peer),
      tls_(std::move(socket), runtime_->tls(kind).native_handle()), timer_(server.io()),
      session_(runtime_->config_ptr(kind), peer, std::move(session_id), server.log())
{
}

void Connection::start()
{
    ticket_.trust = runtime_->trust.get();
    ticket_.listener = kind_;
    ticket_.peer = peer_;
    net::attach_ticket_binding(tls_.native_handle(), &ticket_);
    // The handshake gets the command timeout too: a silent peer must not hold a slot.
    arm_timer(runtime_->settings.limits.command_timeout);
    tls_.async_handshake([self = shared_from_this()](const net::TlsSocket::Result& r) { self->on_handshake(r); });
}

void Connection::on_handshake(const net::TlsSocket::Result& result)
{
    if (!result) {
        if (server_.log())
            server_.log()(LogLine("tls").kv("session", session_.id()).kv("peer", peer_.str())
                              .kv("result", "fail").kv("reason", reason_name(Reason::tls_handshake))
                              .kv("detail", result.what()).str());
        finish("handshake failed");
        return;
    }
    started_ = true;
    server_.handshake_done();
    SSL* ssl = tls_.native_handle();
    TlsInfo tls;
    tls.version = net::tls_version(ssl);
    tls.cipher = net::tls_cipher(ssl);
    tls.identity = net::handshake_identity(ssl, ticket_, std::time(nullptr));
    tls.resumed = SSL_session_reused(ssl) == 1;
    session_.start(std::move(tls));
    pump();
}

void Connection::pump()
{
    if (finished_)
        return;
    // Whether the peer has read everything we sent: only then does its input restart
    // the idle timer. A peer that sends without reading must not keep itself alive.
    const bool output_flowing = unsent() == 0;
    if (auto address = session_.take_lookup()) {
        server_.lookup_client_names(*address, [self = shared_from_this()](ReverseDnsResult r) {
            self->session_.reverse_dns_done(std::move(r));
            self->pump();
        });
    }
    if (auto request = session_.take_delivery()) {
        server_.store(std::move(*request), [self = shared_from_this()](Reason failure, std::string detail) {
            self->session_.delivery_done(failure, detail);
            self->pump();
        });
    }
    if (stop_requested_)
        session_.shutdown(); // the session waits for an open transaction to end
    out_ += session_.take_output();
    if (session_.wants_close() && !closing_) {
        closing_ = true;
        // The last reply gets one timeout to leave; a peer that reads nothing is cut off.
        arm_timer(runtime_->settings.limits.command_timeout);
    }
    write();
    // Backpressure: read only while the session can act on input and what we owe the
    // peer is small; its further commands wait in its own socket buffers.
    if (!closing_ && session_.wants_input() && unsent() < ServerSession::max_pending_output)
        read();
    if (!closing_ && output_flowing)
        arm_timer(session_.current_timeout());
}

void Connection::read()
{
    if (reading_)
        return;
    reading_ = true;
    tls_.async_read_some(buffer_.data(), buffer_.size(), [self = shared_from_this()](
                                                             const net::TlsSocket::Result& r, std::size_t n) {
        self->reading_ = false;
        if (!r) {
            self->finish(r.what());
            return;
        }
        self->session_.receive(std::string_view(self->buffer_.data(), n));
        self->pump();
    });
}

void Connection::write()
{
    if (writing_ || finished_)
        return;
    if (out_.empty()) {
        if (closing_)
            finish("closed");
        return;
    }
    writing_ = true;
    writing_buffer_ = std::exchange(out_, std::string{});
    tls_.async_write(writing_buffer_, [self = shared_from_this()](const net::TlsSocket::Result& r) {
        self->writing_ = false;
        self->writing_buffer_.clear();
        if (!r) {
            self->finish(r.what());
            return;
        }
        if (!self->out_.empty() || self->closing_) {
            if (!self->closing_)
                self->arm_timer(self->session_.current_timeout()); // the peer is reading
            self->write();
            return;
        }
        // The peer took our replies: commands held back for them go on now.
        self->session_.output_sent();
        self->pump();
    });
}

void Connection::arm_timer(std::chrono::seconds after)
{
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (ec || self->finished_)
            return;
        if (!self->started_) {
            self->finish("handshake timeout");
            return;
        }
        if (self->writing_ || self->closing_) {
            // Our replies have not left for a whole timeout: the peer does not read.
            if (self->server_.log())
                self->server_.log()(LogLine("close").kv("session", self->session_.id())
                                        .kv("peer", self->peer_.str()).kv("result", "fail")
                                        .kv("reason", "write_timeout")
                                        .kv("unsent", static_cast<long long>(self->unsent())).str());
            self->finish("write timeout");
            return;
        }
        self->session_.timeout();
        self->pump();
    });
}

void Connection::stop()
{
    stop_requested_ = true;
    if (started_)
        pump();
}

void Connection::finish(std::string_view why)
{
    if (finished_)
        return;
    finished_ = true;
    timer_.cancel();
    // A TLS close_notify would wait for the peer; the session is over, so just close.
    tls_.close();
    if (server_.log())
        server_.log()(LogLine("disconnect").kv("session", session_.id()).kv("peer", peer_.str())
                          .kv("why", why).kv("messages", static_cast<long long>(session_.messages_accepted())).str());
    server_.closed(this);
}

} // namespace amtp::amtpd
