// amtpd: a small AMTP server. Foreground, logs to stderr (one key=value line per
// decision), SIGTERM finishes sessions in flight within a bound, SIGHUP reloads
// certificates and policy without dropping sessions.
#include "amtpd/server.hpp"

#include "amtp/errors.hpp"
#include "amtp/settings.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include <grp.h>
#include <pwd.h>
#include <sysexits.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>

namespace po = boost::program_options;
using namespace amtp;

namespace {

void log_to_stderr(const std::string& line)
{
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::fprintf(stderr, "%s amtpd %s\n", stamp, line.c_str());
    std::fflush(stderr);
}

void drop_privileges(const std::string& user)
{
    if (user.empty() || ::geteuid() != 0)
        return;
    const passwd* pw = ::getpwnam(user.c_str());
    if (!pw)
        throw ConfigError("user: no such user " + user);
    if (::setgroups(0, nullptr) != 0 || ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0)
        throw ConfigError("user: cannot switch to " + user);
}

} // namespace

int main(int argc, char** argv)
{
    po::options_description cli("amtpd options");
    cli.add_options()
        ("help,h", "show this help and every configuration option")
        ("config,c", po::value<std::string>()->default_value("/etc/amtp/amtpd.ini"), "configuration file")
        ("check-config", "load and check the configuration, print it, and exit");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, cli), vm);
        po::notify(vm);
    } catch (const std::exception& e) {
        std::cerr << "amtpd: " << e.what() << "\n" << cli;
        return EX_USAGE;
    }
    if (vm.count("help")) {
        std::cout << cli << "\nConfiguration file options:\n" << settings_help();
        return 0;
    }
    const std::string file = vm["config"].as<std::string>();
    std::shared_ptr<const amtpd::Runtime> runtime;
    try {
        runtime = amtpd::load_runtime(file);
    } catch (const ConfigError& e) {
        std::cerr << "amtpd: " << e.what() << "\n";
        return EX_CONFIG;
    }
    if (vm.count("check-config")) {
        std::cout << describe_settings(runtime->settings) << "configuration OK\n";
        return 0;
    }
    try {
        boost::asio::io_context io;
        amtpd::Server server(io, runtime, log_to_stderr);
        server.listen();
        drop_privileges(runtime->settings.user);
        boost::asio::signal_set stop_signals(io, SIGTERM, SIGINT);
        stop_signals.async_wait([&](const boost::system::error_code& ec, int) {
            if (!ec)
                server.stop(std::chrono::seconds(30));
        });
        boost::asio::signal_set reload_signal(io, SIGHUP);
        std::function<void()> wait_reload = [&]() {
            reload_signal.async_wait([&](const boost::system::error_code& ec, int) {
                if (ec)
                    return;
                try {
                    server.reload(amtpd::load_runtime(file));
                } catch (const ConfigError& e) {
                    log_to_stderr(LogLine("reload").kv("result", "fail").kv("detail", e.what()).str());
                }
                wait_reload();
            });
        };
        wait_reload();
        log_to_stderr(LogLine("start").kv("hostname", runtime->settings.hostname).kv("config", file).str());
        io.run();
        log_to_stderr(LogLine("exit").str());
    } catch (const ConfigError& e) {
        std::cerr << "amtpd: " << e.what() << "\n";
        return EX_CONFIG;
    } catch (const std::exception& e) {
        std::cerr << "amtpd: " << e.what() << "\n";
        return EX_OSERR;
    }
    return 0;
}
