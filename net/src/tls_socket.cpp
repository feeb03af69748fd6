#include "amtp/net/tls_socket.hpp"

#include <boost/asio/post.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace amtp::net {

namespace asio = boost::asio;

namespace {

// The first queued OpenSSL error as text, then the queue cleared: errors belong to the
// operation that failed, not to the next connection on this thread.
std::string openssl_error(int ssl_error)
{
    const unsigned long e = ERR_get_error();
    std::string text;
    if (e != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        text = buf;
    } else if (ssl_error == SSL_ERROR_SYSCALL && errno != 0) {
        text = std::strerror(errno);
    } else {
        text = "TLS error " + std::to_string(ssl_error);
    }
    ERR_clear_error();
    return text;
}

} // namespace

TlsSocket::TlsSocket(asio::ip::tcp::socket socket, SSL_CTX* ctx)
    : socket_(std::move(socket)), ssl_(SSL_new(ctx))
{
    if (!ssl_ || SSL_set_fd(ssl_.get(), socket_.native_handle()) != 1)
        throw std::runtime_error("TLS: cannot create a connection: " + openssl_error(SSL_ERROR_SSL));
    socket_.non_blocking(true);
    // Writes may complete in parts; the unwritten rest is offered again from a buffer
    // that may have moved (the caller's string is stable, but the offset changes).
    SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_accept_state(ssl_.get());
}

TlsSocket::Step TlsSocket::step(int ret, Result& result)
{
    if (ret > 0) {
        ERR_clear_error();
        return Step::done;
    }
    const int err = SSL_get_error(ssl_.get(), ret);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        return Step::want_read;
    case SSL_ERROR_WANT_WRITE:
        return Step::want_write;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        result.kind = Result::Kind::eof;
        return Step::failed;
    default:
        break;
    }
    // A peer that drops the TCP connection without close_notify: for a mail session that
    // is the end of the conversation, as with plain TCP.
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0) {
        result.kind = Result::Kind::eof;
        return Step::failed;
    }
    if (err == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        result.kind = Result::Kind::eof;
        return Step::failed;
    }
    result.kind = Result::Kind::error;
    result.detail = openssl_error(err);
    return Step::failed;
}

template <class F>
void TlsSocket::wait(Step s, F&& retry)
{
    socket_.async_wait(s == Step::want_read ? asio::socket_base::wait_read : asio::socket_base::wait_write,
                       [this, retry = std::forward<F>(retry)](const boost::system::error_code& ec) mutable {
                           if (ec || closed_) {
                               retry(Result{Result::Kind::error, ec ? ec.message() : "closed"});
                               return;
                           }
                           retry(Result{});
                       });
}

void TlsSocket::async_handshake(Handler done)
{
    // Always through the executor: a handler never runs inside its initiating call.
    asio::post(socket_.get_executor(), [this, done = std::move(done)]() mutable { handshake_step(std::move(done)); });
}

void TlsSocket::handshake_step(Handler done)
{
    if (closed_)
        return done(Result{Result::Kind::error, "closed"});
    errno = 0;
    Result result;
    const Step s = step(SSL_do_handshake(ssl_.get()), result);
    if (s == Step::done || s == Step::failed)
        return done(result);
    wait(s, [this, done = std::move(done)](const Result& waited) mutable {
        if (!waited)
            return done(waited);
        handshake_step(std::move(done));
    });
}

void TlsSocket::async_read_some(char* data, std::size_t size, ReadHandler done)
{
    asio::post(socket_.get_executor(),
               [this, data, size, done = std::move(done)]() mutable { read_step(data, size, std::move(done)); });
}

void TlsSocket::read_step(char* data, std::size_t size, ReadHandler done)
{
    if (closed_)
        return done(Result{Result::Kind::error, "closed"}, 0);
    errno = 0;
    Result result;
    std::size_t n = 0;
    const int ret = SSL_read_ex(ssl_.get(), data, size, &n);
    const Step s = step(ret == 1 ? 1 : 0, result);
    if (s == Step::done)
        return done(result, n);
    if (s == Step::failed)
        return done(result, 0);
    wait(s, [this, data, size, done = std::move(done)](const Result& waited) mutable {
        if (!waited)
            return done(waited, 0);
        read_step(data, size, std::move(done));
    });
}

void TlsSocket::async_write(std::string_view data, Handler done)
{
    asio::post(socket_.get_executor(),
               [this, data, done = std::move(done)]() mutable { write_step(data, std::move(done)); });
}

void TlsSocket::write_step(std::string_view data, Handler done)
{
    if (closed_)
        return done(Result{Result::Kind::error, "closed"});
    while (!data.empty()) {
        errno = 0;
        Result result;
        std::size_t n = 0;
        const int ret = SSL_write_ex(ssl_.get(), data.data(), data.size(), &n);
        const Step s = step(ret == 1 ? 1 : 0, result);
        if (s == Step::done) {
            data.remove_prefix(n);
            continue;
        }
        if (s == Step::failed)
            return done(result);
        wait(s, [this, data, done = std::move(done)](const Result& waited) mutable {
            if (!waited)
                return done(waited);
            write_step(data, std::move(done));
        });
        return;
    }
    done(Result{});
}

void TlsSocket::close()
{
    if (closed_)
        return;
    closed_ = true;
    boost::system::error_code ignored;
    socket_.cancel(ignored);
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
}

} // namespace amtp::net
