#include "support/unbound_server.hpp"

#include "support/test_paths.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace amtp::test {

namespace {

constexpr const char* unbound_binary = "/usr/sbin/unbound";

// Closes a descriptor on every path out of a scope.
struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd()
    {
        if (fd >= 0)
            ::close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

sockaddr_in loopback(std::uint16_t port)
{
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

std::uint16_t bound_port(int fd)
{
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
        throw std::runtime_error(std::string("getsockname: ") + std::strerror(errno));
    return ntohs(sa.sin_port);
}

bool can_bind(int type, std::uint16_t port)
{
    Fd s(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
    if (s.fd < 0)
        return false;
    const auto sa = loopback(port);
    return ::bind(s.fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
}

// A port free for both UDP and TCP right now. Someone may take it before unbound
// binds it; start_once notices (unbound exits) and the caller tries another.
std::uint16_t free_port()
{
    for (int attempt = 0; attempt < 20; ++attempt) {
        Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (s.fd < 0)
            throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
        const auto sa = loopback(0);
        if (::bind(s.fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0)
            throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
        const auto port = bound_port(s.fd);
        ::close(s.fd);
        s.fd = -1;
        if (can_bind(SOCK_STREAM, port))
            return port;
    }
    throw std::runtime_error("no free port on 127.0.0.1");
}

// Quoted for unbound.conf: double quotes unless the text holds one (TXT data).
std::string quoted(const std::string& text)
{
    return text.find('"') == std::string::npos ? "\"" + text + "\"" : "'" + text + "'";
}

std::string zone_file(const std::string& zone)
{
    return "$ORIGIN " + zone + "\n"
           "@ 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n"
           "@ 3600 IN NS ns.test.\n"
           "@ 3600 IN PTR servfail.test.\n";
}

std::string config_text(const UnboundConfig& config, const std::string& dir, std::uint16_t port)
{
    std::string c = "server:\n";
    c += "  interface: 127.0.0.1\n";
    c += "  port: " + std::to_string(port) + "\n";
    // Unbound's default would let a second server share the port silently.
    c += "  so-reuseport: no\n";
    c += "  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  pidfile: \"\"\n";
    c += "  directory: " + quoted(dir) + "\n";
    c += "  use-syslog: no\n  logfile: \"\"\n  verbosity: 1\n  num-threads: 1\n";
    c += "  do-ip6: no\n";
    // Loopback only: outgoing queries can only leave from 127.0.0.1, and names outside
    // the test zones are refused instead of recursed for.
    c += "  outgoing-interface: 127.0.0.1\n";
    c += "  access-control: 127.0.0.0/8 allow\n";
    c += "  do-not-query-localhost: no\n";
    c += "  local-zone: \".\" refuse\n";
    for (const auto& zone : config.zones)
        c += "  local-zone: " + quoted(zone) + " static\n";
    for (const auto& rr : config.local_data)
        c += "  local-data: " + quoted(rr) + "\n";
    for (const auto& ptr : config.local_data_ptr)
        c += "  local-data-ptr: " + quoted(ptr) + "\n";
    for (const auto& zone : config.servfail_zones) {
        // Out of the static zones' hands, into the validator's: the zone is served
        // unsigned while a trust anchor says it must be signed.
        c += "  local-zone: " + quoted(zone) + " transparent\n";
        c += "  trust-anchor: " +
             quoted(zone + " DS 12345 8 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE0C7C8D5C2D6A1C1D2E3F4A5B") + "\n";
    }
    for (std::size_t i = 0; i < config.servfail_zones.size(); ++i) {
        c += "auth-zone:\n";
        c += "  name: " + quoted(config.servfail_zones[i]) + "\n";
        c += "  zonefile: " + quoted(dir + "/servfail-" + std::to_string(i) + ".zone") + "\n";
        c += "  for-downstream: no\n  for-upstream: yes\n  fallback-enabled: no\n";
    }
    c += "remote-control:\n  control-enable: no\n";
    return c;
}

// "localhost. A" (answered from unbound's own default zone: no recursion).
std::string probe_query(std::uint16_t id)
{
    std::string q;
    q += static_cast<char>(id >> 8);
    q += static_cast<char>(id & 0xff);
    q += std::string("\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 10);  // RD, one question
    q += std::string("\x09localhost\x00\x00\x01\x00\x01", 15);
    return q;
}

// True once the server answers a query on its UDP port.
bool answers(std::uint16_t port)
{
    Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.fd < 0)
        return false;
    const auto sa = loopback(port);
    if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0)
        return false;
    const std::uint16_t id = 0x4a7e;
    const auto query = probe_query(id);
    if (::send(s.fd, query.data(), query.size(), 0) != static_cast<ssize_t>(query.size()))
        return false;
    pollfd pfd{s.fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0)
        return false;
    unsigned char reply[512];
    const auto n = ::recv(s.fd, reply, sizeof reply, 0);
    return n >= 12 && reply[0] == (id >> 8) && reply[1] == (id & 0xff) && (reply[2] & 0x80);
}

} // namespace

UnboundServer::UnboundServer(UnboundConfig config) : config_(std::move(config)), dir_(fresh_dir("unbound"))
{
    for (std::size_t i = 0; i < config_.servfail_zones.size(); ++i)
        write_file(dir_ + "/servfail-" + std::to_string(i) + ".zone", zone_file(config_.servfail_zones[i]));
    std::string why;
    for (int attempt = 0; attempt < 5; ++attempt) {
        if (start_once(why))
            return;
    }
    throw std::runtime_error("unbound did not start: " + why);
}

UnboundServer::~UnboundServer() { stop(); }

std::string UnboundServer::forwarder() const { return "127.0.0.1@" + std::to_string(port_); }

bool UnboundServer::start_once(std::string& why)
{
    port_ = free_port();
    const std::string conf = write_file(dir_ + "/unbound.conf", config_text(config_, dir_, port_));
    const std::string log = dir_ + "/unbound.log";
    if (run_command(std::string(unbound_binary) + "-checkconf " + conf + " >/dev/null") != 0)
        throw std::runtime_error("unbound-checkconf refused " + conf);

    // Everything the child needs is prepared before fork: the test process may have
    // threads (libunbound's), so the child only makes async-signal-safe calls.
    const std::string binary = unbound_binary;
    const std::string flag_d = "-d", flag_c = "-c";
    char* const argv[] = {const_cast<char*>(binary.c_str()), const_cast<char*>(flag_d.c_str()),
                          const_cast<char*>(flag_c.c_str()), const_cast<char*>(conf.c_str()), nullptr};
    const long max_fd = std::min(::sysconf(_SC_OPEN_MAX), 65536L);
    const pid_t pid = ::fork();
    if (pid < 0)
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int null = ::open("/dev/null", O_RDONLY);
        if (out < 0 || null < 0)
            ::_exit(126);
        ::dup2(null, 0);
        ::dup2(out, 1);
        ::dup2(out, 2);
        for (long fd = 3; fd < max_fd; ++fd)  // none of the test's sockets or pipes
            ::close(static_cast<int>(fd));
        ::execv(argv[0], argv);
        ::_exit(127);
    }
    pid_ = pid;

    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < give_up) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            std::string text;
            try {
                text = read_file(log);
            } catch (const std::exception&) {
            }
            why = "unbound exited (port " + std::to_string(port_) + "): " + text;
            return false;  // most likely the port was taken meanwhile: try another
        }
        if (answers(port_))
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    stop();
    throw std::runtime_error("unbound started but does not answer on port " + std::to_string(port_));
}

void UnboundServer::stop() noexcept
{
    if (pid_ <= 0)
        return;
    ::kill(pid_, SIGTERM);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() >= give_up) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
}

SilentPort::SilentPort()
{
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
        throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    const auto sa = loopback(0);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd_);
        throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
    }
    try {
        port_ = bound_port(fd_);
    } catch (...) {
        ::close(fd_);
        throw;
    }
}

SilentPort::~SilentPort()
{
    if (fd_ >= 0)
        ::close(fd_);
}

std::uint16_t unused_port() { return free_port(); }

std::string SilentPort::forwarder() const { return "127.0.0.1@" + std::to_string(port_); }

} // namespace amtp::test
