// amtp-opensmtpd-gate: owns the AMTP listeners of an OpenSMTPD site. Mutual TLS with
// the profile's certificate rules (serverAuth-only client certificates accepted, B3),
// the identity decided by the core's TrustStore and registered with the filter, the
// plaintext session relayed to smtpd's loopback proxy-v2 listener. Foreground, logs
// one key=value line per decision to stderr, SIGTERM/SIGINT stop it.
#include "gate/registry.hpp"
#include "gate/relay.hpp"

#include "amtp/net/descriptors.hpp"
#include "amtp/net/tls_context.hpp"

#include "amtp/connection_limits.hpp"
#include "amtp/errors.hpp"
#include "amtp/policy.hpp"
#include "amtp/settings.hpp"
#include "amtp/trust_options.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/program_options.hpp>

#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <map>
#include <memory>

namespace asio = boost::asio;
namespace po = boost::program_options;
using asio::ip::tcp;
using namespace amtp;
using namespace amtp::opensmtpd;

namespace {

void log_line(const std::string& line)
{
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::fprintf(stderr, "%s amtp-opensmtpd-gate %s\n", stamp, line.c_str());
    std::fflush(stderr);
}

std::string read_file(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw ConfigError(path, 0, "", "cannot read the file");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// After the listeners and sockets are bound, the gate needs no privilege: it only
// relays bytes. Root's part ends here (as amtpd's does).
void drop_privileges(const std::string& user)
{
    if (::geteuid() != 0)
        return;
    const passwd* pw = ::getpwnam(user.c_str());
    if (!pw)
        throw ConfigError("--user: no such user " + user + " (plugins/opensmtpd/install-deps creates it)");
    if (pw->pw_uid == 0)
        throw ConfigError("--user: " + user + " is root");
    if (::setgroups(0, nullptr) != 0 || ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0)
        throw ConfigError("--user: cannot switch to " + user);
    if (::setuid(0) == 0)
        throw ConfigError("--user: root could be regained after switching to " + user);
}

class Gate {
public:
    Gate(asio::io_context& io, const Settings& s, const RelayContext& context, Registry& registry)
        : io_(io), context_(context), registry_(registry),
          // No resumption: the relay verifies every client from the chain it presents
          // (a resumed session would bring its leaf alone), as docs/opensmtpd.md says.
          public_tls_(net::make_server_context(s, ListenerKind::public_network, net::Resumption::off).release()),
          private_tls_(net::make_server_context(s, ListenerKind::private_network, net::Resumption::off).release()),
          limits_(s.limits)
    {
        for (const auto& e : s.listen.public_endpoints)
            listen(e, ListenerKind::public_network);
        for (const auto& e : s.listen.private_endpoints)
            listen(e, ListenerKind::private_network);
    }

    void stop()
    {
        boost::system::error_code ignored;
        for (auto& l : listeners_)
            l->acceptor.close(ignored);
        const auto copy = relays_;
        for (const auto& [ptr, relay] : copy)
            relay->stop();
    }

private:
    struct Listener {
        tcp::acceptor acceptor;
        ListenerKind kind;
        asio::steady_timer backoff;
        bool failing = false;   // accept() is failing: logged once, then retried slowly
    };

    static const char* kind_name(ListenerKind kind)
    {
        return kind == ListenerKind::public_network ? "public" : "private";
    }

    void listen(const Endpoint& e, ListenerKind kind)
    {
        auto l = std::make_unique<Listener>(Listener{tcp::acceptor(io_), kind, asio::steady_timer(io_)});
        const tcp::endpoint ep(asio::ip::make_address(e.address.str()), e.port);
        l->acceptor.open(ep.protocol());
        l->acceptor.set_option(tcp::acceptor::reuse_address(true));
        if (ep.protocol() == tcp::v6())
            l->acceptor.set_option(asio::ip::v6_only(true));
        l->acceptor.bind(ep);
        l->acceptor.listen(asio::socket_base::max_listen_connections);
        log_line(LogLine("listen").kv("address", e.str())
                     .kv("listener", kind == ListenerKind::public_network ? "public" : "private").str());
        listeners_.push_back(std::move(l));
        accept(*listeners_.back());
    }

    void accept(Listener& l)
    {
        l.acceptor.async_accept([this, &l](const boost::system::error_code& ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted)
                return;
            if (!ec) {
                l.failing = false;
                admit(l, std::move(socket));
            } else if (ec != asio::error::connection_aborted) {
                // Out of descriptors (EMFILE, ENFILE) or memory: the pending connection
                // stays queued and accept() would fail again at once. Retrying only
                // after a pause keeps the gate from spinning until a session ends.
                if (!l.failing)
                    log_line(LogLine("accept").kv("result", "fail").kv("reason", "accept_failed")
                                 .kv("listener", kind_name(l.kind)).kv("detail", ec.message())
                                 .kv("retry", "250ms").str());
                l.failing = true;
                l.backoff.expires_after(std::chrono::milliseconds(250));
                l.backoff.async_wait([this, &l](const boost::system::error_code& e) {
                    if (!e)
                        accept(l);
                });
                return;
            }
            accept(l);
        });
    }

    void admit(Listener& l, tcp::socket socket)
    {
        boost::system::error_code ec;
        const auto remote = socket.remote_endpoint(ec);
        const auto peer = ec ? std::nullopt : IpAddress::parse(remote.address().to_string());
        if (!peer)
            return; // gone already
        const std::string id = "g" + std::to_string(++counter_);
        const auto admission = limits_.admit(*peer);
        if (!admission) {
            // Closed before any TLS byte: see amtp/connection_limits.hpp.
            log_line(LogLine("connect").kv("gate", id).kv("peer", SessionKey{*peer, remote.port()}.str())
                         .kv("listener", kind_name(l.kind)).kv("result", "refused")
                         .kv("reason", reason_name(Reason::too_many_connections))
                         .kv("limit", std::string(ConnectionLimits::name(admission.refusal))).str());
            socket.close(ec);
            return;
        }
        socket.set_option(tcp::no_delay(true), ec);
        auto& tls = l.kind == ListenerKind::public_network ? public_tls_ : private_tls_;
        auto relay = std::make_shared<Relay>(std::move(socket), tls, l.kind, context_, registry_, id,
                                             [this, key = admission.key](Relay* r) {
                                                 relays_.erase(r);
                                                 limits_.release(key);
                                             });
        relays_[relay.get()] = relay;
        relay->start();
    }

    asio::io_context& io_;
    const RelayContext& context_;
    Registry& registry_;
    asio::ssl::context public_tls_;
    asio::ssl::context private_tls_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    ConnectionLimits limits_;
    std::map<Relay*, std::shared_ptr<Relay>> relays_;
    unsigned long long counter_ = 0;
};

} // namespace

int main(int argc, char** argv)
{
    std::string config, smtpd, socket_path, socket_group, notice_name, user;
    unsigned ack_wait = 10;
    po::options_description opts("amtp-opensmtpd-gate options");
    opts.add_options()("help,h", "this help")("config,c", po::value(&config)->required(), "the shared AMTP INI file")(
        "smtpd", po::value(&smtpd)->required(), "smtpd's loopback proxy-v2 listener, ADDRESS:PORT")(
        "socket", po::value(&socket_path)->required(), "Unix socket the filter reads identities from")(
        "socket-group", po::value(&socket_group)->default_value("opensmtpd"),
        "group allowed to connect to the socket (the user smtpd runs filters as)")(
        "delivery-notices", po::value(&notice_name),
        "abstract socket name amtp-opensmtpd-deliver reports stored messages to; with it, smtpd's 250 "
        "for a message is passed on once the message is in the Maildir (as amtpd acknowledges)")(
        "ack-wait", po::value(&ack_wait)->default_value(10), "seconds a 250 is held at most for that")(
        "user", po::value(&user)->default_value("amtpgate"),
        "the user the gate runs as once its sockets are bound (when started as root)");
    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, opts), vm);
        if (vm.count("help")) {
            std::cout << opts;
            return 0;
        }
        po::notify(vm);
    } catch (const std::exception& e) {
        std::cerr << "amtp-opensmtpd-gate: " << e.what() << "\n" << opts;
        return EX_USAGE;
    }
    try {
        const Settings s = load_settings(config);
        const auto target = Endpoint::parse(smtpd);
        if (!target)
            throw ConfigError("--smtpd: not ADDRESS:PORT: " + smtpd);
        const Policy policy = s.policy.file.empty() ? Policy{} : Policy::load_file(s.policy.file);
        RelayContext context;
        context.trust = TrustStore::load(trust_options(s, policy.private_networks));
        context.smtpd = tcp::endpoint(asio::ip::make_address(target->address.str()), target->port);
        context.handshake_timeout = s.limits.command_timeout;
        // smtpd's own timeouts end idle sessions first; this only catches a stuck relay.
        context.idle_timeout = s.limits.command_timeout + s.limits.data_timeout;
        context.log = log_line;
        if (!policy.advertise.empty())
            context.ehlo_mpc_line = policy.advertise.ehlo_line();

        asio::io_context io;
        // SIGTERM and SIGINT are taken over before any socket is bound: a signal sent as
        // soon as a port answers must reach the handler, which removes the registration
        // socket, not the default action. (Delivered once io.run() runs.)
        asio::signal_set signals(io, SIGTERM, SIGINT);
        std::signal(SIGPIPE, SIG_IGN);
        // Each relayed session holds two descriptors: the client's and smtpd's.
        if (auto warning = net::raise_descriptor_limit(s.limits.max_connections, 2))
            log_line(warning->str());
        std::unique_ptr<DeliveryNotices> notices;
        if (!notice_name.empty()) {
            notices = std::make_unique<DeliveryNotices>(io, notice_name);
            context.notices = notices.get();
            context.ack_wait = std::chrono::seconds(ack_wait);
        }
        SharedConfig shared;
        shared.ini_path = config;
        shared.ini_text = read_file(config);
        shared.policy_path = s.policy.file;
        if (!s.policy.file.empty())
            shared.policy_text = read_file(s.policy.file);
        Registry registry(io, socket_path, socket_group, encode_config(shared), log_line);
        Gate gate(io, s, context, registry);
        drop_privileges(user);
        signals.async_wait([&](const boost::system::error_code&, int sig) {
            log_line(LogLine("stop").kv("signal", static_cast<long long>(sig)).str());
            gate.stop();
            registry.close();
            if (notices)
                notices->close();
            io.stop();
        });
        log_line(LogLine("start").kv("uid", static_cast<long long>(::geteuid())).str());
        io.run();
        return 0;
    } catch (const ConfigError& e) {
        std::cerr << "amtp-opensmtpd-gate: " << e.what() << "\n";
        return EX_CONFIG;
    } catch (const std::exception& e) {
        std::cerr << "amtp-opensmtpd-gate: " << e.what() << "\n";
        return EX_OSERR;
    }
}
