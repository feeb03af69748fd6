// amtpd: a small AMTP server. Foreground, logs to stderr (one key=value line per
// decision), SIGTERM finishes sessions in flight within a bound, SIGHUP reloads
// certificates and policy without dropping sessions.
#include "amtpd/server.hpp"
#include "amtp/net/descriptors.hpp"

#include "amtp/errors.hpp"
#include "amtp/queue.hpp"
#include "amtp/settings.hpp"

#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include <fcntl.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <pwd.h>
#include <sysexits.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <csignal>
#include <filesystem>
#include <fstream>
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

// A private key others can read is a key others may have copied: say so loudly.
void check_key_permissions(const Settings& s)
{
    struct stat st {};
    if (!s.tls.key.empty() && ::stat(s.tls.key.c_str(), &st) == 0 && (st.st_mode & 0077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        log_to_stderr(LogLine("warning").kv("key", s.tls.key).kv("mode", mode)
                          .kv("detail", "the private key is readable by group or others; chmod 600 it").str());
    }
}

// After the start amtpd runs as `user` and reads tls.ticket-keys again at every reload:
// a file it could read only as root (mode 600, owned by root) would fail every reload.
void check_ticket_keys_owner(const Settings& s)
{
    if (s.tls.ticket_keys.empty() || s.user.empty() || ::geteuid() != 0)
        return;
    const passwd* pw = ::getpwnam(s.user.c_str());
    struct stat st {};
    if (!pw || ::stat(s.tls.ticket_keys.c_str(), &st) != 0 || st.st_uid == pw->pw_uid)
        return;   // an unknown user is drop_privileges' to report, a missing file load_runtime's
    throw ConfigError(s.tls.ticket_keys, 0, "tls.ticket-keys",
                      "owned by uid " + std::to_string(st.st_uid) + ", but amtpd reads it as " + s.user +
                          " at every reload: chown " + s.user + " it (mode 600)");
}

void drop_privileges(const Settings& s)
{
    const std::string& user = s.user;
    if (user.empty() || ::geteuid() != 0)
        return;
    const passwd* pw = ::getpwnam(user.c_str());
    if (!pw)
        throw ConfigError("user: no such user " + user);
    // The queue is written by the daemon after it gives up root.
    if (::chown(s.queue.directory.c_str(), pw->pw_uid, pw->pw_gid) != 0)
        throw ConfigError(s.queue.directory, 0, "queue.directory", "cannot hand it to user " + user);
    if (::setgroups(0, nullptr) != 0 || ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0)
        throw ConfigError("user: cannot switch to " + user);
}

std::string pid_file(const Settings& s)
{
    return s.queue.directory + "/amtpd.pid";
}

// The queue directory belongs to the unprivileged user, who could leave a symbolic
// link named amtpd.pid pointing at any file: root must not write through it. The old
// name is removed and the file created afresh, refusing to follow a link.
void write_pid_file(const Settings& s)
{
    const std::string path = pid_file(s);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        log_to_stderr(LogLine("pidfile").kv("result", "fail").kv("path", path).kv("detail", std::strerror(errno)).str());
        return;
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_to_stderr(LogLine("pidfile").kv("result", "fail").kv("path", path).kv("detail", std::strerror(errno)).str());
        return;
    }
    const std::string text = std::to_string(::getpid()) + "\n";
    const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    if (!ok)
        log_to_stderr(LogLine("pidfile").kv("result", "fail").kv("path", path).kv("detail", "short write").str());
}

// Tells a running amtpd (if any) to re-read its queue.
// The pid file is in a directory the unprivileged user owns, and SIGUSR1 ends most
// processes: signal the pid only when it runs this same program.
void notify_daemon(const Settings& s)
{
    std::ifstream in(pid_file(s));
    long pid = 0;
    if (!(in >> pid) || pid <= 1)
        return;
    std::error_code e1, e2;
    const auto theirs = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", e1);
    const auto ours = std::filesystem::read_symlink("/proc/self/exe", e2);
    if (e1 || e2 || theirs != ours) {
        std::cerr << "amtpd: pid " << pid << " in " << pid_file(s) << " is not a running amtpd; not signalled\n";
        return;
    }
    if (::kill(static_cast<pid_t>(pid), SIGUSR1) == 0)
        std::cout << "amtpd (pid " << pid << ") told to re-read the queue\n";
}

int queue_command(const Settings& s, const std::vector<std::string>& args)
{
    try {
        Queue queue(s.queue.directory);
        const std::string cmd = args.empty() ? "list" : args.front();
        if (cmd == "list") {
            for (const auto& e : queue.load_all()) {
                char when[32];
                std::tm tm{};
                gmtime_r(&e.next_attempt, &tm);
                std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
                std::cout << e.id << " from=<" << e.sender << "> mpc=" << e.mpc.str() << " attempts=" << e.attempts
                          << " next=" << when << "\n";
                for (const auto& r : e.recipients) {
                    static const char* names[] = {"pending", "delivered", "failed", "bounced"};
                    std::cout << "    " << names[static_cast<int>(r.status)] << " <" << r.address << "> "
                              << r.last_reply << "\n";
                }
            }
            return 0;
        }
        if (cmd == "flush") {
            for (auto e : queue.load_all()) {
                e.next_attempt = 0;
                if (!queue.update(e).ok)
                    return EX_TEMPFAIL;
            }
            notify_daemon(s);
            return 0;
        }
        if (cmd == "remove" && args.size() > 1) {
            int status = 0;
            for (std::size_t i = 1; i < args.size(); ++i) {
                const QueueResult r = queue.remove(args[i]);
                if (!r.ok) {
                    std::cerr << "amtpd: " << args[i] << ": " << r.error << "\n";
                    status = EX_DATAERR;
                }
            }
            notify_daemon(s);
            return status;
        }
        std::cerr << "amtpd: --queue takes list, flush or remove ID...\n";
        return EX_USAGE;
    } catch (const ConfigError& e) {
        std::cerr << "amtpd: " << e.what() << "\n";
        return EX_CONFIG;
    }
}

} // namespace

int main(int argc, char** argv)
{
    po::options_description cli("amtpd options");
    cli.add_options()
        ("help,h", "show this help and every configuration option")
        ("config,c", po::value<std::string>()->default_value("/etc/amtp/amtp.ini"), "configuration file")
        ("check-config", "load and check the configuration, print it, and exit")
        ("queue", po::value<std::vector<std::string>>()->multitoken(),
         "queue control: list | flush | remove ID... (a running amtpd is told by SIGUSR1)");
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
        check_key_permissions(runtime->settings);
        try {
            check_ticket_keys_owner(runtime->settings);
        } catch (const ConfigError& e) {
            std::cerr << "amtpd: " << e.what() << "\n";
            return EX_CONFIG;
        }
        std::cout << describe_settings(runtime->settings) << "configuration OK\n";
        return 0;
    }
    if (vm.count("queue"))
        return queue_command(runtime->settings, vm["queue"].as<std::vector<std::string>>());
    try {
        // A peer that resets while we write must end that session, not the process:
        // OpenSSL writes to the socket with plain send(), which raises SIGPIPE.
        std::signal(SIGPIPE, SIG_IGN);
        check_key_permissions(runtime->settings);
        check_ticket_keys_owner(runtime->settings);
        if (auto warning = net::raise_descriptor_limit(runtime->settings.limits.max_connections, 1))
            log_to_stderr(warning->str());
        boost::asio::io_context io;
        amtpd::Server server(io, runtime, log_to_stderr);
        // Signals are taken over before the listeners open: a SIGHUP or SIGTERM sent as
        // soon as the port answers must reach its handler, not the default action.
        boost::asio::signal_set stop_signals(io, SIGTERM, SIGINT);
        stop_signals.async_wait([&](const boost::system::error_code& ec, int) {
            if (!ec)
                server.stop(std::chrono::seconds(30));
        });
        boost::asio::signal_set queue_signal(io, SIGUSR1);
        std::function<void()> wait_queue = [&]() {
            queue_signal.async_wait([&](const boost::system::error_code& ec, int) {
                if (ec)
                    return;
                server.rescan_queue();
                wait_queue();
            });
        };
        wait_queue();
        boost::asio::signal_set reload_signal(io, SIGHUP);
        std::function<void()> wait_reload = [&]() {
            reload_signal.async_wait([&](const boost::system::error_code& ec, int) {
                if (ec)
                    return;
                try {
                    server.reload(amtpd::load_runtime(file, &server.runtime()));
                } catch (const ConfigError& e) {
                    log_to_stderr(LogLine("reload").kv("result", "fail").kv("detail", e.what()).str());
                }
                wait_reload();
            });
        };
        wait_reload();
        server.listen();
        write_pid_file(runtime->settings);
        drop_privileges(runtime->settings);
        LogLine started("start");
        started.kv("hostname", runtime->settings.hostname).kv("config", file);
        if (runtime->ticket_keys)
            started.kv("ticket_keys", static_cast<long long>(runtime->ticket_keys->keys.size()));
        log_to_stderr(started.str());
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
