#include "amtpd/server.hpp"

#include "amtpd/connection.hpp"
#include "amtpd/delivery.hpp"

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cerrno>
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

// Outgoing attempts wait on remote servers for up to queue.attempt-timeout each; a
// few threads of their own bound how many run at once, and the rest wait their turn.
constexpr unsigned delivery_threads = 8;

} // namespace

Server::Server(asio::io_context& io, std::shared_ptr<const Runtime> runtime, LogSink log)
    : io_(io), runtime_(std::move(runtime)), log_(std::move(log)), resolver_(resolver_options(runtime_->settings)),
      dns_(io, resolver_), storage_(storage_threads()), delivery_(delivery_threads),
      queue_(runtime_->settings.queue.directory),
      runner_(io, delivery_, storage_, queue_, [this]() { return runtime_; }, log_),
      limits_(runtime_->settings.limits), stop_timer_(io), trimmer_(io)
{
    // Session ids: a random per-process prefix and a counter, unique across restarts.
    std::random_device rd;
    static constexpr char digits[] = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    for (int i = 0; i < 6; ++i)
        session_prefix_ += digits[rd() % (sizeof digits - 1)];
}

Server::~Server()
{
    delivery_.stop(); // attempts not yet started stay queued on disk for the next start
    delivery_.join();
    storage_.join();
}

void Server::listen()
{
    auto add = [this](const Endpoint& e, ListenerKind kind) {
        auto l = std::make_unique<Listener>(Listener{tcp::acceptor(io_), kind, asio::steady_timer(io_), {}});
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
        if (ec) {
            accept_failed(listener, ec);
            return;
        }
        listener.delay = std::chrono::milliseconds(0);
        accepted(listener, std::move(socket));
        accept(listener);
    });
}

void Server::accept_failed(Listener& listener, const boost::system::error_code& ec)
{
    // Out of descriptors (or kernel memory) the pending connection stays in the backlog
    // and the listener stays readable: retrying at once would spin. Wait, doubling the
    // wait up to a second, until sessions end and free descriptors.
    const bool exhausted = ec == asio::error::no_descriptors || ec.value() == ENFILE ||
                           ec == asio::error::no_buffer_space || ec == asio::error::no_memory;
    if (!exhausted) {
        if (log_)
            log_(LogLine("accept").kv("result", "fail").kv("reason", "accept_error").kv("detail", ec.message()).str());
        accept(listener);
        return;
    }
    if (listener.delay.count() == 0 && log_) // one line per episode, not one per retry
        log_(LogLine("accept").kv("result", "fail").kv("reason", "descriptors_exhausted")
                 .kv("detail", ec.message()).kv("sessions", static_cast<long long>(connections_.size())).str());
    listener.delay = std::min(std::chrono::milliseconds(1000),
                              std::max(std::chrono::milliseconds(10), listener.delay * 2));
    listener.backoff.expires_after(listener.delay);
    listener.backoff.async_wait([this, &listener](const boost::system::error_code& e) {
        if (!e && !stopping_)
            accept(listener);
    });
}

void Server::accepted(Listener& listener, tcp::socket socket)
{
    boost::system::error_code e2;
    const auto remote = socket.remote_endpoint(e2);
    const auto peer = e2 ? std::nullopt : IpAddress::parse(remote.address().to_string());
    if (!peer)
        return; // the peer is already gone
    const auto admission = limits_.admit(*peer);
    const char* kind = listener.kind == ListenerKind::public_network ? "public" : "private";
    if (!admission) {
        // Implicit TLS leaves no cleartext way to say 421 (profile B1): close before
        // the handshake, so that a flood of connections costs no TLS work.
        if (log_) {
            LogLine line("connect");
            line.kv("peer", peer->str()).kv("listener", kind).kv("result", "refused")
                .kv("reason", reason_name(Reason::too_many_connections))
                .kv("limit", std::string(ConnectionLimits::name(admission.refusal)));
            if (!peer->is_v4())
                line.kv("counted-as", admission.key.str() + "/" +
                                          std::to_string(runtime_->settings.limits.ipv6_prefix_length));
            log_(line.str());
        }
        socket.close(e2);
        return;
    }
    socket.set_option(tcp::no_delay(true), e2);
    auto c = std::make_shared<Connection>(*this, std::move(socket), runtime_, listener.kind, *peer,
                                          next_session_id());
    connections_.emplace(c.get(), Open{c, admission.key});
    c->start();
    trimmer_.activity();
}

void Server::closed(Connection* connection)
{
    const auto it = connections_.find(connection);
    if (it == connections_.end())
        return;
    const IpAddress key = it->second.limit_key;
    connections_.erase(it);
    limits_.release(key);
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
        l->backoff.cancel();
    }
    if (log_)
        log_(LogLine("stop").kv("sessions", static_cast<long long>(connections_.size())).str());
    if (connections_.empty()) {
        io_.stop();
        return;
    }
    std::vector<std::shared_ptr<Connection>> copy; // stop() may close a connection, which erases it
    for (const auto& [raw, open] : connections_)
        copy.push_back(open.connection);
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
    limits_.configure(runtime_->settings.limits);
    if (log_) {
        LogLine line("reload");
        line.kv("result", "pass").kv("key", runtime_->key_kept ? "kept" : "read");
        if (runtime_->ticket_keys)
            line.kv("ticket_keys", static_cast<long long>(runtime_->ticket_keys->keys.size()));
        log_(line.str());
    }
}

} // namespace amtp::amtpd
