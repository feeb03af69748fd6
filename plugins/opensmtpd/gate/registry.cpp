#include "gate/registry.hpp"

#include <boost/asio/write.hpp>

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>

namespace amtp::opensmtpd {

namespace asio = boost::asio;
using asio::local::stream_protocol;

struct Registry::Client {
    explicit Client(asio::io_context& io) : socket(io) {}
    stream_protocol::socket socket;
    std::string pending;
    std::string writing;
    bool busy = false;
    char sink[256];
};

namespace {
// A filter that stops reading must not make the gate hold memory without bound.
constexpr std::size_t max_pending = 4 * 1024 * 1024;
} // namespace

Registry::Registry(asio::io_context& io, std::string path, const std::string& socket_group, std::string config_line,
                   LogSink log)
    : io_(io), path_(std::move(path)), config_line_(std::move(config_line)), log_(std::move(log)), acceptor_(io)
{
    ::unlink(path_.c_str());
    // Created with no access for others from the start: no window in which another
    // local user could connect.
    const mode_t old = ::umask(0117);
    boost::system::error_code ec;
    acceptor_.open(stream_protocol(), ec);
    if (!ec)
        acceptor_.bind(stream_protocol::endpoint(path_), ec);
    ::umask(old);
    if (!ec)
        acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::runtime_error("cannot listen on " + path_ + ": " + ec.message());
    if (!socket_group.empty()) {
        const struct group* g = ::getgrnam(socket_group.c_str());
        if (!g || ::chown(path_.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0)
            throw std::runtime_error("cannot give " + path_ + " to group " + socket_group);
    }
    ::chmod(path_.c_str(), 0660);
    const auto slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
    directory_ = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    accept();
}

Registry::~Registry()
{
    close();
    if (directory_ >= 0)
        ::close(directory_);
}

void Registry::close()
{
    boost::system::error_code ignored;
    if (acceptor_.is_open()) {
        acceptor_.close(ignored);
        const auto slash = path_.rfind('/');
        const std::string name = slash == std::string::npos ? path_ : path_.substr(slash + 1);
        if (directory_ < 0 || ::unlinkat(directory_, name.c_str(), 0) != 0)
            ::unlink(path_.c_str());
    }
    for (const auto& c : clients_)
        c->socket.close(ignored);
    clients_.clear();
}

void Registry::accept()
{
    acceptor_.async_accept([this](const boost::system::error_code& ec, stream_protocol::socket socket) {
        if (ec == asio::error::operation_aborted)
            return;
        if (!ec) {
            auto c = std::make_shared<Client>(io_);
            c->socket = std::move(socket);
            clients_.insert(c);
            if (log_)
                log_(LogLine("filter-channel").kv("result", "connected").kv("live", static_cast<long long>(live_.size())).str());
            send(c, config_line_);
            for (const auto& [key, line] : live_)
                send(c, line);
            // The filter never writes; a read tells when it goes away.
            c->socket.async_read_some(asio::buffer(c->sink), [this, c](const boost::system::error_code&, std::size_t) {
                drop(c);
            });
        }
        accept();
    });
}

void Registry::add(const Registration& r)
{
    const std::string line = encode_registration(r);
    live_[r.key] = line;
    for (const auto& c : clients_)
        send(c, line);
}

void Registry::remove(const SessionKey& key)
{
    if (live_.erase(key) == 0)
        return;
    const std::string line = encode_unregistration(key);
    for (const auto& c : clients_)
        send(c, line);
}

void Registry::send(const std::shared_ptr<Client>& c, const std::string& line)
{
    c->pending += line;
    if (c->pending.size() > max_pending) {
        drop(c);
        return;
    }
    write(c);
}

void Registry::write(const std::shared_ptr<Client>& c)
{
    if (c->busy || c->pending.empty())
        return;
    c->busy = true;
    c->writing = std::exchange(c->pending, std::string{});
    asio::async_write(c->socket, asio::buffer(c->writing), [this, c](const boost::system::error_code& ec, std::size_t) {
        c->busy = false;
        if (ec) {
            drop(c);
            return;
        }
        write(c);
    });
}

void Registry::drop(const std::shared_ptr<Client>& c)
{
    if (clients_.erase(c) == 0)
        return;
    boost::system::error_code ignored;
    c->socket.close(ignored);
    if (log_)
        log_(LogLine("filter-channel").kv("result", "closed").str());
}

} // namespace amtp::opensmtpd
