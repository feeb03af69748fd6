// The gate's side of the identity channel: a Unix socket the filter connects to
// (mode 0660, group of smtpd's filter user, so only root and that user can read the
// verified identities). The gate only writes: a registration before it opens the
// loopback connection to smtpd, an unregistration when the session ends. A newly
// connected filter first receives every live registration.
#pragma once

#include "common/registration.hpp"
#include "amtp/log.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <map>
#include <memory>
#include <set>
#include <string>

namespace amtp::opensmtpd {

class Registry {
public:
    // Binds `path` (replacing a stale socket) and gives it to `group` (empty: root's).
    // Throws std::runtime_error naming the path on failure.
    Registry(boost::asio::io_context& io, std::string path, const std::string& group, std::string config_line,
             LogSink log);
    ~Registry();
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    void add(const Registration& r);
    void remove(const SessionKey& key);
    void close();

private:
    struct Client;
    void accept();
    void send(const std::shared_ptr<Client>& c, const std::string& line);
    void write(const std::shared_ptr<Client>& c);
    void drop(const std::shared_ptr<Client>& c);

    boost::asio::io_context& io_;
    std::string path_;
    // The socket's directory, opened while the gate is still root: close() removes the
    // socket through it after the gate has dropped root, which then needs write access
    // to that directory only, not a path it may no longer be allowed to walk.
    int directory_ = -1;
    std::string config_line_;                       // encode_config(): sent first
    LogSink log_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    std::map<SessionKey, std::string> live_;        // encoded registration lines
    std::set<std::shared_ptr<Client>> clients_;
};

} // namespace amtp::opensmtpd
