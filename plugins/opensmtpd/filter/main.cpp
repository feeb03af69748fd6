// amtp-opensmtpd-filter: the OpenSMTPD filter process (filter "amtp" proc-exec ...).
// One poll() loop over smtpd's lines on stdin, the gate's identity channel and the
// resolver's descriptor. Writes only whole protocol lines to stdout; logs to stderr,
// which smtpd copies into its log.
#include "filter/engine.hpp"

#include "amtp/errors.hpp"
#include "amtp/policy.hpp"
#include "amtp/settings.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>
#include <string>

using namespace amtp;
using namespace amtp::opensmtpd;
using Clock = std::chrono::steady_clock;

namespace {

void log_line(const std::string& line)
{
    std::fprintf(stderr, "amtp-opensmtpd-filter %s\n", line.c_str());
    std::fflush(stderr);
}

// Blocking, whole lines: smtpd reads its filters promptly, and a partial line would
// be fatal to it.
void write_stdout(const std::string& text)
{
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(STDOUT_FILENO, text.data() + done, text.size() - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            std::_Exit(0); // smtpd is gone
        }
        done += static_cast<std::size_t>(n);
    }
}

class GateChannel {
public:
    explicit GateChannel(std::string path) : path_(std::move(path)) {}
    ~GateChannel() { close(); }
    int fd() const { return fd_; }
    bool connect()
    {
        close();
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0)
            return false;
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (path_.size() >= sizeof addr.sun_path) {
            close();
            return false;
        }
        std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            close();
            return false;
        }
        buffer_.clear();
        return true;
    }
    void close()
    {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }
    // Reads what is there; calls `line` for each complete line. False when closed.
    template <typename F>
    bool read(F&& line)
    {
        char chunk[65536];
        const ssize_t n = ::read(fd_, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            return true;
        if (n <= 0)
            return false;
        buffer_.append(chunk, static_cast<std::size_t>(n));
        std::size_t start = 0;
        for (;;) {
            const auto nl = buffer_.find('\n', start);
            if (nl == std::string::npos)
                break;
            line(std::string_view(buffer_).substr(start, nl - start));
            start = nl + 1;
        }
        buffer_.erase(0, start);
        return true;
    }

private:
    std::string path_;
    int fd_ = -1;
    std::string buffer_;
};

EngineConfig engine_config(const SharedConfig& shared)
{
    const Settings s = load_settings_string(shared.ini_text, shared.ini_path);
    return make_engine_config(s, std::make_shared<const Policy>(
        shared.policy_text.empty() ? Policy{} : Policy::load_string(shared.policy_text, shared.policy_path)));
}

} // namespace

int main(int argc, char** argv)
{
    std::string socket_path;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--socket" && i + 1 < argc)
            socket_path = argv[++i];
        else {
            std::cerr << "usage: amtp-opensmtpd-filter --socket GATE-SOCKET\n";
            return EX_USAGE;
        }
    }
    if (socket_path.empty()) {
        std::cerr << "usage: amtp-opensmtpd-filter --socket GATE-SOCKET\n";
        return EX_USAGE;
    }
    std::signal(SIGPIPE, SIG_IGN);
    GateChannel gate(socket_path);
    std::unique_ptr<Resolver> resolver;
    Engine engine(log_line, write_stdout);
    // The gate sends the configuration first on the channel. Until it is there the
    // filter still answers smtpd's handshake (smtpd waits for register|ready before
    // it listens), and sessions wait at their connect phase.
    auto on_gate_line = [&](std::string_view line) {
        if (auto m = decode_gate_line(line)) {
            engine.on_gate(*m);
            return;
        }
        auto shared = decode_config_line(line);
        if (!shared) {
            log_line("gate-channel result=ignored why=malformed");
            return;
        }
        if (engine.configured())
            return; // a reconnection resends it; a new configuration needs a restart
        try {
            EngineConfig config = engine_config(*shared);
            resolver = std::make_unique<Resolver>(
                resolver_options(load_settings_string(shared->ini_text, shared->ini_path)));
            engine.configure(std::move(config), *resolver);
            log_line("configure result=pass source=" + printable(shared->ini_path));
        } catch (const std::exception& e) {
            // Nothing can be decided without it: smtpd must not run unguarded.
            log_line(std::string("configure result=fail detail=") + printable(e.what()));
            std::exit(EX_CONFIG);
        }
    };

    std::string in;
    auto reconnect_at = Clock::time_point::min();
    log_line("startup result=pass socket=" + socket_path);
    for (;;) {
      try {
        if (gate.fd() < 0 && Clock::now() >= reconnect_at) {
            if (!gate.connect())
                reconnect_at = Clock::now() + std::chrono::milliseconds(200);
            else
                log_line("gate-channel result=connected");
        }
        pollfd fds[3] = {{STDIN_FILENO, POLLIN, 0}, {gate.fd(), POLLIN, 0}, {resolver ? resolver->fd() : -1, POLLIN, 0}};
        const nfds_t n = 3; // a negative fd is skipped by poll()
        auto deadline = engine.next_deadline();
        if (resolver)
            deadline = std::min(deadline, resolver->next_deadline());
        if (gate.fd() < 0)
            deadline = std::min(deadline, reconnect_at);
        int timeout = -1;
        if (deadline != Clock::time_point::max()) {
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
            timeout = static_cast<int>(std::clamp<long long>(ms + 1, 0, 60000));
        }
        if (::poll(fds, n, timeout) < 0 && errno != EINTR)
            return EX_OSERR;
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char chunk[65536];
            const ssize_t got = ::read(STDIN_FILENO, chunk, sizeof chunk);
            if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
                return 0; // smtpd closed our input: it is stopping
            if (got > 0) {
                in.append(chunk, static_cast<std::size_t>(got));
                std::size_t start = 0;
                for (;;) {
                    const auto nl = in.find('\n', start);
                    if (nl == std::string::npos)
                        break;
                    engine.on_smtpd_line(std::string_view(in).substr(start, nl - start));
                    start = nl + 1;
                }
                in.erase(0, start);
            }
        }
        if (gate.fd() >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            const bool open = gate.read(on_gate_line);
            if (!open) {
                gate.close();
                log_line("gate-channel result=closed");
            }
        }
        if (resolver)
            resolver->process(); // runs finished lookups, fails those past their deadline
        engine.tick();
      } catch (const std::exception& e) {
        // A lookup callback that failed: logged, and the loop goes on.
        log_line(std::string("loop result=error detail=") + printable(e.what()));
      }
    }
}
