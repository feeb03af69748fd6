#include "amtp/net/outgoing.hpp"

#include "amtp/net/tls_context.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <optional>

namespace amtp::net {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// Runs the io_context until the started operation completes or `limit` passes; on
// timeout the socket is closed so the operation ends with operation_aborted.
// In slices, so that a stopping server (`cancel`) is noticed within one of them.
constexpr std::chrono::milliseconds cancel_slice{200};

template <typename Socket>
bool run_with_deadline(asio::io_context& io, Socket& socket, std::chrono::steady_clock::duration limit, bool& done,
                       const std::atomic<bool>* cancel)
{
    const auto until = std::chrono::steady_clock::now() + limit;
    io.restart();
    while (!done && !(cancel && *cancel)) {
        const auto left = until - std::chrono::steady_clock::now();
        if (left <= std::chrono::steady_clock::duration::zero())
            break;
        io.run_for(std::min<std::chrono::steady_clock::duration>(left, cancel_slice));
        if (io.stopped())
            io.restart();
    }
    if (done)
        return true;
    boost::system::error_code ignored;
    socket.close(ignored);
    io.restart();
    io.run();
    return false;
}

struct Attempt {
    bool connected = false;          // the session ran (outcomes decided by it)
    Reason failure = Reason::none;   // why not, when it did not
    std::string detail;
};

using Clock = std::chrono::steady_clock;

// A step's own limit, cut short by the attempt's overall deadline.
Clock::duration within(Clock::time_point deadline, Clock::duration step)
{
    const auto left = deadline - Clock::now();
    return std::max(Clock::duration::zero(), std::min(step, left));
}

Attempt attempt(const Settings& s, const TrustStore& trust, SSL_CTX* client_tls, ClientSession& session,
                const std::string& target, const IpAddress& address, std::uint16_t port, const LogSink& log,
                Clock::time_point deadline, const std::atomic<bool>* cancel)
{
    asio::io_context io;
    asio::ssl::context ctx(client_tls);
    SSL_CTX_up_ref(client_tls); // the asio context frees what it holds
    asio::ssl::stream<tcp::socket> stream(io, ctx);
    auto& socket = stream.lowest_layer();
    const tcp::endpoint remote(asio::ip::make_address(address.str()), port);
    boost::system::error_code ec;
    // Why a step ended early: its own timeout, the attempt's deadline, or an error.
    // (A timed-out step's handler still runs, with operation_aborted, so `done` alone
    // does not tell.)
    const auto why = [&](bool in_time, const char* timeout) -> std::string {
        if (in_time)
            return ec.message();
        if (cancel && *cancel)
            return "server stopping";
        return Clock::now() >= deadline ? "attempt deadline (queue.attempt-timeout)" : timeout;
    };
    bool in_time = false;
    socket.open(remote.protocol(), ec);
    if (!ec && !s.client.source.empty()) {
        const auto src = IpAddress::parse(s.client.source);
        if (src && src->is_v4() == address.is_v4())
            socket.bind(tcp::endpoint(asio::ip::make_address(src->str()), 0), ec);
    }
    if (ec)
        return {false, Reason::connection_failed, ec.message()};

    bool done = false;
    socket.async_connect(remote, [&](const boost::system::error_code& e) { ec = e; done = true; });
    in_time = run_with_deadline(io, socket, within(deadline, std::chrono::seconds(30)), done, cancel);
    if (!in_time || ec)
        return {false, Reason::connection_failed, why(in_time, "connect timeout")};

    SSL_set_tlsext_host_name(stream.native_handle(), target.c_str());
    done = false;
    stream.async_handshake(asio::ssl::stream_base::client, [&](const boost::system::error_code& e) { ec = e; done = true; });
    in_time = run_with_deadline(io, socket, within(deadline, std::chrono::seconds(60)), done, cancel);
    if (!in_time || ec)
        return {false, Reason::connection_failed, in_time ? "TLS: " + ec.message() : why(false, "TLS handshake timeout")};

    const X509StackPtr chain = peer_certificate_chain(stream.native_handle());
    const IdentityResult server = trust.verify_server(chain.get(), target, std::time(nullptr));
    if (!server.ok()) {
        if (log)
            log(LogLine("server-cert").kv("target", target).kv("result", "fail")
                    .kv("reason", reason_name(server.reason)).kv("detail", server.detail).str());
        return {false, server.reason, server.detail};
    }

    std::array<char, 16384> buffer{};
    const auto step_limit = s.limits.command_timeout;
    while (!session.done()) {
        const std::string out = session.take_output();
        if (!out.empty()) {
            done = false;
            asio::async_write(stream, asio::buffer(out), [&](const boost::system::error_code& e, std::size_t) {
                ec = e;
                done = true;
            });
            in_time = run_with_deadline(io, socket, within(deadline, step_limit), done, cancel);
            if (!in_time || ec) {
                session.connection_lost(why(in_time, "write timeout"));
                return {true, Reason::none, {}};
            }
            continue;
        }
        std::size_t n = 0;
        done = false;
        stream.async_read_some(asio::buffer(buffer), [&](const boost::system::error_code& e, std::size_t got) {
            ec = e;
            n = got;
            done = true;
        });
        in_time = run_with_deadline(io, socket, within(deadline, step_limit), done, cancel);
        if (!in_time || ec) {
            session.connection_lost(why(in_time, "read timeout"));
            return {true, Reason::none, {}};
        }
        session.receive(std::string_view(buffer.data(), n));
    }
    const std::string last = session.take_output(); // QUIT
    if (!last.empty()) {
        done = false;
        asio::async_write(stream, asio::buffer(last), [&](const boost::system::error_code&, std::size_t) { done = true; });
        run_with_deadline(io, socket, within(deadline + std::chrono::seconds(5), std::chrono::seconds(5)), done, cancel);
    }
    boost::system::error_code ignored;
    socket.close(ignored);
    return {true, Reason::none, {}};
}

DomainDelivery all(const OutgoingMessage& m, RecipientStatus status, const Reply& reply)
{
    DomainDelivery d;
    for (const auto& r : m.recipients)
        d.outcomes.push_back({r, status, reply});
    return d;
}

} // namespace

DomainDelivery deliver_to_domain(const Settings& s, Resolver& resolver, const TrustStore& trust, SSL_CTX* client_tls,
                                 const OutgoingMessage& message, const std::string& domain, const LogSink& log,
                                 const std::atomic<bool>* cancel)
{
    // One deadline for the whole attempt (every target, every step): each step has its
    // own timeout, but a peer that answers just in time, forever, must still end.
    const auto deadline = Clock::now() + s.queue.attempt_timeout;
    const SrvResult srv = resolver.srv(domain);
    if (srv.status == DnsStatus::temporary)
        return all(message, RecipientStatus::temporary, reply_for(Reason::dns_temporary, srv.error));
    if (srv.status == DnsStatus::negative || srv.targets.empty())
        return all(message, RecipientStatus::permanent, reply_for(Reason::srv_missing, "_amtp._tcp." + domain));

    Attempt last{false, Reason::connection_failed, "no address for any SRV target"};
    for (const auto& target : srv.targets) {
        const DnsResult addresses = resolver.addresses(target.target);
        if (addresses.status != DnsStatus::answer) {
            last = {false, addresses.status == DnsStatus::temporary ? Reason::dns_temporary : Reason::connection_failed,
                    target.target + ": " + addresses.error};
            continue;
        }
        for (const auto& text : addresses.records) {
            const auto address = IpAddress::parse(text);
            if (!address)
                continue;
            ClientSession session(s.hostname, message);
            if (Clock::now() >= deadline || (cancel && *cancel)) {
                last = {false, Reason::connection_failed, "attempt deadline (queue.attempt-timeout)"};
                break;
            }
            const Attempt a =
                attempt(s, trust, client_tls, session, target.target, *address, target.port, log, deadline, cancel);
            const std::string where = target.target + "[" + address->str() + "]:" + std::to_string(target.port);
            if (log)
                log(LogLine("attempt").kv("domain", domain).kv("server", where)
                        .kv("result", a.connected ? "session" : "fail").kv("reason", reason_name(a.failure))
                        .kv("detail", a.detail).str());
            if (a.connected) {
                DomainDelivery d;
                d.outcomes = session.outcomes();
                d.mpc_denied = session.mpc_denied();
                d.server = where;
                return d;
            }
            last = a;
        }
    }
    // Every target failed before a session: temporary, including certificate problems
    // (a fixed certificate or DNS record should get the mail through on a retry).
    return all(message, RecipientStatus::temporary, reply_for(last.failure == Reason::none ? Reason::connection_failed
                                                                                           : last.failure, last.detail));
}

} // namespace amtp::net
