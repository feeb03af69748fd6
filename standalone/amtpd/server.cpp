#include "amtpd/server.hpp"

#include "amtpd/connection.hpp"
#include "amtpd/delivery.hpp"

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>

#include <random>
#include <thread>

namespace amtp::amtpd {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

tcp::endpoint to_asio(const Endpoint& e)
{
    return tcp::endpoint(asio::ip::make_address(e.address.str()), e.port);
}

// Storage threads spend their time waiting in fsync, not computing: enough of them
// that concurrent sessions' fsyncs overlap (the filesystem commits them together in
// one journal transaction) instead of queueing behind a few.
unsigned storage_threads()
{
    return std::max(16u, 4 * std::thread::hardware_concurrency());
}

} // namespace

Server::Server(asio::io_context& io, std::shared_ptr<const Runtime> runtime, LogSink log)
    : io_(io), runtime_(std::move(runtime)), log_(std::move(log)), resolver_(resolver_options(runtime_->settings)),
      dns_(io, resolver_), storage_(storage_threads()),
      queue_(runtime_->settings.queue.directory),
      runner_(io, storage_, queue_, [this]() { return runtime_; }, log_), stop_timer_(io), trimmer_(io)
{
    // Session ids: a random per-process prefix and a counter, unique across restarts.
    std::random_device rd;
    static constexpr char digits[] = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    for (int i = 0; i < 6; ++i)
        session_prefix_ += digits[rd() % (sizeof digits - 1)];
}

Server::~Server()
{
    storage_.join();
}

void Server::listen()
{
    auto add = [this](const Endpoint& e, ListenerKind kind) {
        auto l = std::make_unique<Listener>(Listener{tcp::acceptor(io_), kind});
        const tcp::endpoint ep = to_asio(e);
        l->acceptor.open(ep.protocol());
        l->acceptor.set_option(tcp::acceptor::reuse_address(true));
        if (ep.protocol() == tcp::v6())
            l->acceptor.set_option(asio::ip::v6_only(true));
        l->acceptor.bind(ep);
        l->acceptor.listen(asio::socket_base::max_listen_connections);
        if (log_)
            log_(LogLine("listen").kv("address", e.str())
                     .kv("listener", kind == ListenerKind::public_network ? "public" : "private").str());
        listeners_.push_back(std::move(l));
        accept(*listeners_.back());
    };
    for (const auto& e : runtime_->settings.listen.public_endpoints)
        add(e, ListenerKind::public_network);
    for (const auto& e : runtime_->settings.listen.private_endpoints)
        add(e, ListenerKind::private_network);
    runner_.rescan(); // mail queued before a restart goes on
}

std::string Server::next_session_id()
{
    return session_prefix_ + std::to_string(++session_counter_);
}

void Server::accept(Listener& listener)
{
    listener.acceptor.async_accept([this, &listener](const boost::system::error_code& ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || stopping_)
            return;
        if (!ec) {
            boost::system::error_code e2;
            const auto remote = socket.remote_endpoint(e2);
            const auto peer = e2 ? std::nullopt : IpAddress::parse(remote.address().to_string());
            if (peer) {
                socket.set_option(tcp::no_delay(true), e2);
                const Limits& limits = runtime_->settings.limits;
                std::optional<Reason> refuse;
                unsigned& count = per_ip_[*peer];
                if (connections_.size() >= limits.max_connections || count >= limits.max_connections_per_ip)
                    refuse = Reason::too_many_connections;
                ++count;
                auto c = std::make_shared<Connection>(*this, std::move(socket), runtime_, listener.kind, *peer,
                                                      next_session_id(), refuse);
                connections_.insert(c);
                c->start();
                trimmer_.activity();
            }
        } else if (log_) {
            log_(LogLine("accept").kv("result", "fail").kv("detail", ec.message()).str());
        }
        accept(listener);
    });
}

void Server::closed(Connection* connection, const IpAddress& peer)
{
    for (auto it = connections_.begin(); it != connections_.end(); ++it) {
        if (it->get() == connection) {
            connections_.erase(it);
            break;
        }
    }
    auto p = per_ip_.find(peer);
    if (p != per_ip_.end() && --p->second == 0)
        per_ip_.erase(p);
    trimmer_.activity();
    if (stopping_ && connections_.empty())
        io_.stop();
}

void Server::lookup_client_names(const IpAddress& address, std::function<void(ReverseDnsResult)> done)
{
    auto [waiting, first] = ptr_waiters_.try_emplace(address);
    waiting->second.push_back(std::move(done));
    if (!first)
        return;
    amtp::lookup_client_names(resolver_, address, runtime_->settings.dns.forward_confirm,
                              [this, address](ReverseDnsResult result) {
                                  auto it = ptr_waiters_.find(address);
                                  if (it == ptr_waiters_.end())
                                      return;
                                  auto waiters = std::move(it->second);
                                  ptr_waiters_.erase(it);
                                  for (auto& w : waiters)
                                      w(result);
                              });
    dns_.arm();
}

void Server::store(DeliveryRequest request, std::function<void(Reason, std::string)> done)
{
    // Storage blocks on fsync: off the loop, result posted back to it.
    asio::post(storage_, [this, runtime = runtime_, request = std::move(request), done = std::move(done)]() mutable {
        StorageOutcome outcome = store_message(runtime->settings, queue_, request);
        asio::post(io_, [this, done = std::move(done), outcome = std::move(outcome)]() {
            if (!outcome.queued_id.empty())
                runner_.rescan();
            done(outcome.failure, outcome.detail);
        });
    });
}

void Server::stop(std::chrono::seconds grace)
{
    if (stopping_)
        return;
    stopping_ = true;
    runner_.stop();
    for (auto& l : listeners_) {
        boost::system::error_code ignored;
        l->acceptor.close(ignored);
    }
    if (log_)
        log_(LogLine("stop").kv("sessions", static_cast<long long>(connections_.size())).str());
    if (connections_.empty()) {
        io_.stop();
        return;
    }
    const auto copy = connections_; // stop() may close a connection, which erases it
    for (const auto& c : copy)
        c->stop();
    stop_timer_.expires_after(grace);
    stop_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec)
            io_.stop();
    });
}

void Server::reload(std::shared_ptr<const Runtime> runtime)
{
    runtime_ = std::move(runtime);
    if (log_)
        log_(LogLine("reload").kv("result", "pass").str());
}

} // namespace amtp::amtpd
