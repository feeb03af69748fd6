#include "amtp/net/lmtp.hpp"

#include "amtp/address.hpp"
#include "amtp/client_session.hpp"
#include "amtp/log.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace amtp::net {

namespace {

class Connection {
public:
    Connection(std::chrono::seconds timeout) : timeout_ms_(static_cast<int>(timeout.count() * 1000)) {}
    ~Connection()
    {
        if (fd_ >= 0)
            ::close(fd_);
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    std::string open(const std::string& target)
    {
        if (target.rfind("unix:", 0) == 0) {
            sockaddr_un sa{};
            sa.sun_family = AF_UNIX;
            const std::string path = target.substr(5);
            if (path.size() >= sizeof sa.sun_path)
                return "socket path too long";
            std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
            fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
                return target + ": " + std::generic_category().message(errno);
            return {};
        }
        const auto ep = Endpoint::parse(target);
        if (!ep)
            return "bad LMTP target " + target;
        sockaddr_storage ss{};
        socklen_t len = 0;
        if (ep->address.is_v4()) {
            auto* in = reinterpret_cast<sockaddr_in*>(&ss);
            in->sin_family = AF_INET;
            in->sin_port = htons(ep->port);
            std::memcpy(&in->sin_addr, ep->address.bytes(), 4);
            len = sizeof *in;
        } else {
            auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons(ep->port);
            std::memcpy(&in6->sin6_addr, ep->address.bytes(), 16);
            len = sizeof *in6;
        }
        fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0)
            return target + ": " + std::generic_category().message(errno);
        return {};
    }

    bool send(std::string_view data)
    {
        while (!data.empty()) {
            pollfd p{fd_, POLLOUT, 0};
            if (::poll(&p, 1, timeout_ms_) <= 0)
                return false;
            const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return false;
            data.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    // One reply (all its lines); code 0 when the connection broke or timed out.
    Reply reply()
    {
        Reply r;
        for (;;) {
            const auto nl = buffer_.find('\n');
            if (nl == std::string::npos) {
                if (buffer_.size() > 65536)
                    return r;
                pollfd p{fd_, POLLIN, 0};
                if (::poll(&p, 1, timeout_ms_) <= 0)
                    return r;
                char chunk[4096];
                const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    return r;
                buffer_.append(chunk, static_cast<std::size_t>(n));
                continue;
            }
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            if (!line.empty() && line.back() == '\r')
                line.pop_back();
            if (line.size() < 3)
                return r;
            const int code = std::atoi(line.substr(0, 3).c_str());
            if (r.text.empty())
                r.text = printable(line);
            else
                r.more.push_back(printable(line));
            if (line.size() == 3 || line[3] != '-') {
                r.code = code;
                return r;
            }
        }
    }

private:
    int fd_ = -1;
    int timeout_ms_;
    std::string buffer_;
};

LocalStatus status_of(const Reply& r)
{
    return r.code >= 200 && r.code < 300 ? LocalStatus::delivered
           : r.code >= 500               ? LocalStatus::permanent
                                         : LocalStatus::temporary; // 4xx, or no reply at all
}

// The agent's reply first (a bounce takes its enhanced status code from there), then
// the step it answered.
std::string reply_line(const Reply& r, std::string_view step)
{
    if (!r.code)
        return "LMTP " + std::string(step) + ": no reply";
    return r.text + " (LMTP " + std::string(step) + ")";
}

} // namespace

std::vector<LocalOutcome> deliver_lmtp(const std::string& target, const std::string& lhlo_name,
                                       const std::string& sender, const std::vector<std::string>& recipients,
                                       const std::vector<std::string_view>& parts, std::chrono::seconds timeout)
{
    std::vector<LocalOutcome> out;
    for (const auto& rcpt : recipients)
        out.push_back({rcpt, LocalStatus::temporary, false, "", ""});
    // A failure of the dialogue itself (connection, greeting, LHLO, MAIL, DATA) is the
    // agent's, not the recipients': temporary whatever its code, so that a misconfigured
    // agent makes mail wait for the operator rather than bounce.
    auto all = [&](const Reply& r, std::string_view step, const std::vector<bool>* only = nullptr) {
        for (std::size_t i = 0; i < out.size(); ++i)
            if (!only || (*only)[i]) {
                out[i].status = LocalStatus::temporary;
                out[i].reply = reply_line(r, step);
            }
        return out;
    };
    Connection c(timeout);
    if (const std::string err = c.open(target); !err.empty())
        return all(Reply{}, "connect " + err);
    Reply r = c.reply();
    if (r.code != 220)
        return all(r, "greeting");
    if (!c.send("LHLO " + lhlo_name + "\r\n") || (r = c.reply()).code != 250)
        return all(r, "LHLO");
    if (!c.send("MAIL FROM:<" + sender + ">\r\n") || (r = c.reply()).code != 250)
        return all(r, "MAIL");
    std::vector<bool> accepted(recipients.size(), false);
    bool any = false;
    for (std::size_t i = 0; i < recipients.size(); ++i) {
        if (!c.send("RCPT TO:<" + recipients[i] + ">\r\n") || (r = c.reply()).code == 0) {
            // The dialogue broke: this one and every later one are open.
            std::vector<bool> open(recipients.size(), false);
            for (std::size_t k = i; k < recipients.size(); ++k)
                open[k] = true;
            all(r, "RCPT", &open);
            break;
        }
        if (r.code / 100 == 2) {
            accepted[i] = true;
            any = true;
        } else {
            out[i].status = status_of(r);
            out[i].reply = reply_line(r, "RCPT");
        }
    }
    if (!any) {
        c.send("QUIT\r\n");
        return out;
    }
    if (!c.send("DATA\r\n") || (r = c.reply()).code != 354)
        return all(r, "DATA", &accepted);
    std::string body;
    for (const auto part : parts)
        body.append(part.data(), part.size());
    if (!c.send(dot_stuff({}, body)))
        return all(Reply{}, "message", &accepted);
    // LMTP: one reply per accepted recipient, in RCPT order (RFC 2033 s4.2).
    for (std::size_t i = 0; i < recipients.size(); ++i) {
        if (!accepted[i])
            continue;
        r = c.reply();
        out[i].status = status_of(r);
        out[i].reply = reply_line(r, "delivery");
        if (r.code == 0) {
            // No more replies will come; the agent may or may not have stored the
            // rest, and a retry is the only way not to lose them.
            for (std::size_t k = i; k < recipients.size(); ++k)
                if (accepted[k]) {
                    out[k].status = LocalStatus::temporary;
                    out[k].reply = reply_line(r, "delivery");
                }
            break;
        }
    }
    c.send("QUIT\r\n");
    return out;
}

} // namespace amtp::net
