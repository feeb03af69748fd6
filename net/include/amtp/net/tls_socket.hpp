// A server-side TLS connection on the socket's own descriptor, driven by Asio's
// readiness waits. Boost.Asio's ssl::stream runs OpenSSL over a BIO pair and keeps two
// 17 KiB record buffers per connection for the connection's whole life, on top of
// OpenSSL's own: with thousands of idle AMTP sessions that is most of the server's
// memory. Here OpenSSL reads and writes the socket itself, and SSL_MODE_RELEASE_BUFFERS
// (set on the context) frees its record buffers whenever a session is idle.
#pragma once

#include "amtp/handles.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <string>
#include <string_view>

namespace amtp::net {

class TlsSocket {
public:
    // Why an operation ended: ok, the peer closed (eof), or a failure with its text.
    struct Result {
        enum class Kind { ok, eof, error } kind = Kind::ok;
        std::string detail;
        explicit operator bool() const { return kind == Kind::ok; }
        // For logs: why the connection ended.
        std::string what() const { return kind == Kind::eof ? "peer closed" : detail; }
    };
    using Handler = std::function<void(const Result&)>;
    using ReadHandler = std::function<void(const Result&, std::size_t)>;

    TlsSocket(boost::asio::ip::tcp::socket socket, SSL_CTX* ctx);
    TlsSocket(const TlsSocket&) = delete;
    TlsSocket& operator=(const TlsSocket&) = delete;

    SSL* native_handle() const { return ssl_.get(); }

    // One operation of each kind at a time (a read may be pending while a write runs);
    // handlers are called from the socket's executor, never inline.
    void async_handshake(Handler done);
    void async_read_some(char* data, std::size_t size, ReadHandler done);
    void async_write(std::string_view data, Handler done);   // all of `data`; it must stay alive

    // Shuts the TCP connection down and closes it; pending operations end with an error.
    void close();

private:
    enum class Step { done, want_read, want_write, failed };
    Step step(int ret, Result& result);
    void handshake_step(Handler done);
    void read_step(char* data, std::size_t size, ReadHandler done);
    void write_step(std::string_view data, Handler done);
    template <class F>
    void wait(Step s, F&& retry);

    boost::asio::ip::tcp::socket socket_;
    SslPtr ssl_;
    bool closed_ = false;
};

} // namespace amtp::net
