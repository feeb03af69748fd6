// amtp-opensmtpd-gate: owns the AMTP listeners of an OpenSMTPD site. Mutual TLS with
// the profile's certificate rules (serverAuth-only client certificates accepted, B3),
// the identity decided by the core's TrustStore and registered with the filter, the
// plaintext session relayed to smtpd's loopback proxy-v2 listener. Foreground, logs
// one key=value line per decision to stderr, SIGTERM/SIGINT stop it.
#include "gate/registry.hpp"
#include "gate/relay.hpp"

#include "net/tls_context.hpp"

#include "amtp/errors.hpp"
#include "amtp/policy.hpp"
#include "amtp/settings.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include <sysexits.h>

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

class Gate {
public:
    Gate(asio::io_context& io, const Settings& s, const RelayContext& context, Registry& registry)
        : io_(io), context_(context), registry_(registry),
          public_tls_(net::make_server_context(s, ListenerKind::public_network).release()),
          private_tls_(net::make_server_context(s, ListenerKind::private_network).release())
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
    };

    void listen(const Endpoint& e, ListenerKind kind)
    {
        auto l = std::make_unique<Listener>(Listener{tcp::acceptor(io_), kind});
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
                boost::system::error_code ignored;
                socket.set_option(tcp::no_delay(true), ignored);
                auto& tls = l.kind == ListenerKind::public_network ? public_tls_ : private_tls_;
                auto relay = std::make_shared<Relay>(std::move(socket), tls, l.kind, context_, registry_,
                                                     "g" + std::to_string(++counter_),
                                                     [this](Relay* r) { relays_.erase(r); });
                relays_[relay.get()] = relay;
                relay->start();
            } else {
                log_line(LogLine("accept").kv("result", "fail").kv("detail", ec.message()).str());
            }
            accept(l);
        });
    }

    asio::io_context& io_;
    const RelayContext& context_;
    Registry& registry_;
    asio::ssl::context public_tls_;
    asio::ssl::context private_tls_;
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::map<Relay*, std::shared_ptr<Relay>> relays_;
    unsigned long long counter_ = 0;
};

} // namespace

int main(int argc, char** argv)
{
    std::string config, smtpd, socket_path, socket_group, notice_name;
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
        "ack-wait", po::value(&ack_wait)->default_value(10), "seconds a 250 is held at most for that");
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
        context.trust = TrustStore::load(net::trust_options(s, policy.private_networks));
        context.smtpd = tcp::endpoint(asio::ip::make_address(target->address.str()), target->port);
        context.handshake_timeout = s.limits.command_timeout;
        // smtpd's own timeouts end idle sessions first; this only catches a stuck relay.
        context.idle_timeout = s.limits.command_timeout + s.limits.data_timeout;
        context.log = log_line;
        if (!policy.advertise.empty())
            context.ehlo_mpc_line = policy.advertise.ehlo_line();

        asio::io_context io;
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
        asio::signal_set signals(io, SIGTERM, SIGINT);
        signals.async_wait([&](const boost::system::error_code&, int sig) {
            log_line(LogLine("stop").kv("signal", static_cast<long long>(sig)).str());
            gate.stop();
            registry.close();
            if (notices)
                notices->close();
            io.stop();
        });
        std::signal(SIGPIPE, SIG_IGN);
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
