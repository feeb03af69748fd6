// amtp-bench: the load generator of the benchmarks. Many concurrent workers on one
// Boost.Asio loop, each repeating one kind of exchange against a server for a fixed
// time, from several 127.0.0.x source addresses:
//   tls      TCP connect + mutual TLS handshake, then close (the bare TLS baseline)
//   session  a full AMTP session: TLS, greeting, EHLO (PTR verdict), QUIT
//   message  one AMTP session per worker sending messages back to back (pipelined
//            MAIL/RCPT/DATA), each acknowledged after the server stored it
//   mail     a full session per message: TLS, greeting, EHLO, MAIL, RCPT, DATA with one
//            message, QUIT (the load of figure 3, against amtpd and other MTAs alike)
//   idle     open N sessions, EHLO, and hold them (for memory per session)
// --resume reuses each worker's last TLS session (ticket), and counts the handshakes
// that offered one and were not resumed (not_resumed). In tls mode a TLS 1.3 ticket
// arrives after the handshake, so with --resume (or --wait-close, to time full
// handshakes the same way) a worker reads until the server closes. --carrier says how the MPC
// travels: "parameter" (MPC= on MAIL, AMTP), "header" (the AMTP-MPC header field,
// profile B5, for Exim) or "none" (plain SMTP over TLS, for a stock MTA). MAIL, RCPT
// and DATA go in one write when the EHLO reply offers PIPELINING (RFC 2920), one at a
// time otherwise (stock OpenSMTPD refuses pipelined commands). Prints one JSON object.
#include "amtp/handles.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <functional>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace po = boost::program_options;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
    std::string mode = "session";
    tcp::endpoint target;
    std::vector<asio::ip::address> sources;
    std::string ehlo = "mx.a.test";
    std::string rcpt = "bench@b.test";
    std::string mpc = "per/individual";
    std::string carrier = "parameter";
    std::size_t message_size = 10240;
    unsigned concurrency = 10;
    double seconds = 5;
    bool resume = false;
    bool wait_close = false; // tls mode: read until the server closes (its tickets arrive)
};

struct Stats {
    std::uint64_t completed = 0;
    std::uint64_t errors = 0;
    std::uint64_t resumed = 0;
    std::uint64_t not_resumed = 0; // a session was offered, a full handshake made
    std::vector<double> latencies_ms;
    std::string first_error;
};

class Worker : public std::enable_shared_from_this<Worker> {
public:
    Worker(asio::io_context& io, asio::ssl::context& ctx, const Options& o, Stats& stats, Clock::time_point end,
           asio::ip::address source)
        : io_(io), ctx_(ctx), o_(o), stats_(stats), end_(end), source_(source)
    {
        message_ = o.carrier == "header" ? "AMTP-MPC: " + o.mpc + "\r\n" : std::string();
        message_ += "Subject: bench\r\n\r\n";
        const std::string line(76, 'x');
        while (message_.size() + 78 < o.message_size)
            message_ += line + "\r\n";
        message_ += ".\r\n";
    }

    void start() { connect(); }
    bool holding() const { return holding_; }

private:
    void fail(const std::string& what)
    {
        ++stats_.errors;
        if (stats_.first_error.empty())
            stats_.first_error = what;
        stream_.reset();
        if (Clock::now() < end_ && o_.mode != "idle")
            connect();
    }

    void connect()
    {
        if (Clock::now() >= end_)
            return;
        started_ = Clock::now();
        in_.clear(); // nothing a failed session left unread carries over
        reply_.clear();
        pipelining_ = false;
        stream_ = std::make_unique<asio::ssl::stream<tcp::socket>>(io_, ctx_);
        auto& sock = stream_->lowest_layer();
        boost::system::error_code ec;
        sock.open(o_.target.protocol(), ec);
        sock.set_option(asio::socket_base::reuse_address(true), ec);
        // Abortive close: the benchmark must not run out of ports in TIME_WAIT.
        sock.set_option(asio::socket_base::linger(true, 0), ec);
        sock.bind(tcp::endpoint(source_, 0), ec);
        if (ec)
            return fail("bind: " + ec.message());
        offered_ = o_.resume && session_;
        if (offered_)
            SSL_set_session(stream_->native_handle(), session_.get());
        sock.async_connect(o_.target, [self = shared_from_this()](const boost::system::error_code& e) {
            if (e)
                return self->fail("connect: " + e.message());
            self->stream_->async_handshake(asio::ssl::stream_base::client,
                                           [self](const boost::system::error_code& e2) { self->handshaken(e2); });
        });
    }

    void handshaken(const boost::system::error_code& ec)
    {
        if (ec)
            return fail("handshake: " + ec.message());
        if (SSL_session_reused(stream_->native_handle()))
            ++stats_.resumed;
        else if (offered_)
            ++stats_.not_resumed;
        if (o_.mode == "tls" && (o_.resume || o_.wait_close))
            return drain();
        if (o_.mode == "tls")
            return done_one(true);
        expect("220", [this]() {
            send("EHLO " + o_.ehlo + "\r\n", "250", [this]() {
                pipelining_ = offers(last_reply_, "PIPELINING");
                after_ehlo();
            });
        });
    }

    void after_ehlo()
    {
        if (o_.mode == "session")
            return send("QUIT\r\n", "221", [this]() { done_one(true); });
        if (o_.mode == "idle") {
            holding_ = true;
            ++stats_.completed;
            return;
        }
        transaction();
    }

    // message: back to back on one session, each timed from its MAIL; mail: one per
    // session, timed from the TCP connect, then QUIT and a new session.
    void transaction()
    {
        const bool one = o_.mode == "mail";
        if (!one && Clock::now() >= end_)
            return send("QUIT\r\n", "221", [this]() { stream_.reset(); });
        if (!one)
            started_ = Clock::now();
        const std::string mpc = o_.carrier == "parameter" ? " MPC=" + o_.mpc : std::string();
        const std::string mail = "MAIL FROM:<bench@a.test>" + mpc + "\r\n";
        const std::string rcpt = "RCPT TO:<" + o_.rcpt + ">\r\n";
        auto body = [this, one]() {
            send(message_, "250", [this, one]() {
                record(); // acknowledged: counted even if QUIT then fails
                if (!one)
                    return transaction();
                send("QUIT\r\n", "221", [this]() {
                    stream_.reset();
                    connect();
                });
            });
        };
        if (pipelining_)
            return send(mail + rcpt + "DATA\r\n", "250",
                        [this, body]() { expect("250", [this, body]() { expect("354", body); }); });
        send(mail, "250", [this, rcpt, body]() {
            send(rcpt, "250", [this, body]() { send("DATA\r\n", "354", body); });
        });
    }

    // Whether a multi-line reply (lines joined by "\n") lists an EHLO keyword.
    static bool offers(const std::string& reply, const std::string& keyword)
    {
        std::size_t pos = 0;
        while (pos < reply.size()) {
            auto end = reply.find('\n', pos);
            if (end == std::string::npos)
                end = reply.size();
            std::string word = reply.substr(std::min(pos + 4, end), end - std::min(pos + 4, end));
            word = word.substr(0, word.find(' '));
            std::transform(word.begin(), word.end(), word.begin(), [](unsigned char c) { return std::toupper(c); });
            if (word == keyword)
                return true;
            pos = end + 1;
        }
        return false;
    }

    // tls mode: read (processing the server's NewSessionTicket messages) until the
    // server closes; the handshake is done, so the close, clean or not, ends it.
    void drain()
    {
        stream_->async_read_some(asio::buffer(buf_), [self = shared_from_this()](const boost::system::error_code& ec,
                                                                                  std::size_t) {
            if (!ec)
                return self->drain();
            self->done_one(true);
        });
    }

    void record()
    {
        ++stats_.completed;
        stats_.latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - started_).count());
    }

    void done_one(bool)
    {
        record();
        if (o_.resume) {
            SSL* ssl = stream_->native_handle();
            // Closed without close_notify (abortive close), OpenSSL would mark the
            // session not resumable when the SSL is freed: declare it shut down.
            SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
            if (SSL_SESSION* s = SSL_get1_session(ssl))
                session_.reset(s);
        }
        stream_.reset();
        connect();
    }

    void send(std::string data, std::string expect_code, std::function<void()> then)
    {
        out_ = std::move(data);
        asio::async_write(*stream_, asio::buffer(out_),
                          [self = shared_from_this(), code = std::move(expect_code), then = std::move(then)](
                              const boost::system::error_code& ec, std::size_t) mutable {
                              if (ec)
                                  return self->fail("write: " + ec.message());
                              self->expect(code, std::move(then));
                          });
    }

    // Reads one complete reply (all its lines; the whole reply stays in last_reply_)
    // and checks its code.
    void expect(std::string code, std::function<void()> then)
    {
        for (;;) {
            const auto nl = in_.find("\r\n");
            if (nl == std::string::npos)
                break;
            const std::string line = in_.substr(0, nl);
            in_.erase(0, nl + 2);
            reply_ += (reply_.empty() ? "" : "\n") + line;
            if (line.size() >= 4 && line[3] == '-')
                continue;
            last_reply_ = std::move(reply_);
            reply_.clear();
            if (line.compare(0, 3, code) != 0)
                return fail("expected " + code + ", got: " + line);
            return then();
        }
        stream_->async_read_some(asio::buffer(buf_), [self = shared_from_this(), code = std::move(code),
                                                      then = std::move(then)](const boost::system::error_code& ec,
                                                                              std::size_t n) mutable {
            if (ec)
                return self->fail("read: " + ec.message());
            self->in_.append(self->buf_.data(), n);
            self->expect(std::move(code), std::move(then));
        });
    }

    asio::io_context& io_;
    asio::ssl::context& ctx_;
    const Options& o_;
    Stats& stats_;
    Clock::time_point end_;
    asio::ip::address source_;
    std::unique_ptr<asio::ssl::stream<tcp::socket>> stream_;
    std::unique_ptr<SSL_SESSION, amtp::FreeWith<SSL_SESSION, SSL_SESSION_free>> session_;
    std::array<char, 16384> buf_{};
    std::string in_;
    std::string out_;
    std::string message_;
    std::string reply_;      // the reply being read, lines joined by "\n"
    std::string last_reply_; // the last complete reply
    Clock::time_point started_;
    bool holding_ = false;
    bool pipelining_ = false; // the server's EHLO reply offered PIPELINING
    bool offered_ = false;    // this handshake offered the worker's last session
};

// A server's reply, quoted into the JSON line.
std::string json_string(const std::string& s)
{
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\')
            out += '\\';
        if (static_cast<unsigned char>(c) >= 0x20)
            out += c;
    }
    return out + "\"";
}

double percentile(std::vector<double> v, double p)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

} // namespace

int main(int argc, char** argv)
{
    Options o;
    std::string target, sources, cert, key;
    po::options_description cli("amtp-bench");
    cli.add_options()("help", "help")
        ("mode", po::value(&o.mode)->default_value("session"), "tls | session | message | mail | idle")
        ("target", po::value(&target)->required(), "ADDRESS:PORT")
        ("sources", po::value(&sources)->default_value("127.0.0.2"), "comma-separated source addresses")
        ("cert", po::value(&cert)->required(), "client certificate chain (PEM)")
        ("key", po::value(&key)->required(), "client key (PEM)")
        ("ehlo", po::value(&o.ehlo)->default_value("mx.a.test"), "EHLO name")
        ("rcpt", po::value(&o.rcpt)->default_value("bench@b.test"), "recipient (message mode)")
        ("mpc", po::value(&o.mpc)->default_value("per/individual"), "MPC (message and mail modes)")
        ("carrier", po::value(&o.carrier)->default_value("parameter"),
         "how the MPC travels: parameter (MPC= on MAIL), header (AMTP-MPC field), none (plain SMTP)")
        ("size", po::value(&o.message_size)->default_value(10240), "message size in bytes")
        ("concurrency,c", po::value(&o.concurrency)->default_value(10), "workers (idle: sessions)")
        ("seconds,s", po::value(&o.seconds)->default_value(5), "duration (idle: how long to hold)")
        ("resume", po::bool_switch(&o.resume), "resume TLS sessions (tickets)")
        ("wait-close", po::bool_switch(&o.wait_close),
         "tls mode: after the handshake, read until the server closes (as --resume does)");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, cli), vm);
        if (vm.count("help")) {
            std::cout << cli;
            return 0;
        }
        po::notify(vm);
        if (o.mode != "tls" && o.mode != "session" && o.mode != "message" && o.mode != "mail" && o.mode != "idle")
            throw std::invalid_argument("unknown --mode " + o.mode);
        if (o.carrier != "parameter" && o.carrier != "header" && o.carrier != "none")
            throw std::invalid_argument("--carrier: parameter, header or none, not " + o.carrier);
        const auto colon = target.rfind(':');
        o.target = tcp::endpoint(asio::ip::make_address(target.substr(0, colon)),
                                 static_cast<unsigned short>(std::stoi(target.substr(colon + 1))));
        std::size_t pos = 0;
        while (pos <= sources.size()) {
            const auto comma = sources.find(',', pos);
            o.sources.push_back(asio::ip::make_address(sources.substr(pos, comma - pos)));
            if (comma == std::string::npos)
                break;
            pos = comma + 1;
        }
    } catch (const std::exception& e) {
        std::cerr << "amtp-bench: " << e.what() << "\n";
        return 64;
    }

    asio::io_context io;
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.use_certificate_chain_file(cert);
    ctx.use_private_key_file(key, asio::ssl::context::pem);
    ctx.set_verify_mode(asio::ssl::verify_none); // the benchmark measures, it does not judge
    SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_CLIENT);
    SSL_CTX_set1_groups_list(ctx.native_handle(), "P-256");
    // The tls mode's servers close without close_notify; a session must survive that
    // (a fatal "unexpected EOF" would mark it not resumable).
    SSL_CTX_set_options(ctx.native_handle(), SSL_OP_IGNORE_UNEXPECTED_EOF);

    Stats stats;
    const auto begin = Clock::now();
    const auto end = begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
    std::vector<std::shared_ptr<Worker>> workers;
    if (o.mode == "idle") {
        // Open the sessions first (bounded by a generous deadline), then hold them.
        const auto open_deadline = Clock::now() + std::chrono::seconds(120);
        for (unsigned i = 0; i < o.concurrency; ++i) {
            workers.push_back(std::make_shared<Worker>(io, ctx, o, stats, open_deadline, o.sources[i % o.sources.size()]));
            workers.back()->start();
        }
        while (stats.completed + stats.errors < o.concurrency && Clock::now() < open_deadline)
            io.run_for(std::chrono::milliseconds(50));
        std::cout << "{\"mode\":\"idle\",\"open\":" << stats.completed << ",\"errors\":" << stats.errors
                  << ",\"first_error\":" << json_string(stats.first_error) << "}" << std::endl;
        // Hold until told to stop (stdin closes) or the duration passes.
        io.run_for(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds)));
        return stats.errors ? 1 : 0;
    }
    for (unsigned i = 0; i < o.concurrency; ++i) {
        workers.push_back(std::make_shared<Worker>(io, ctx, o, stats, end, o.sources[i % o.sources.size()]));
        workers.back()->start();
    }
    io.run_until(end + std::chrono::seconds(30)); // in-flight exchanges finish
    const double elapsed = std::chrono::duration<double>(std::min(Clock::now(), end + std::chrono::seconds(30)) - begin).count();
    const double secs = std::max(o.seconds, std::min(elapsed, o.seconds + 30));
    std::cout << "{\"mode\":\"" << o.mode << "\",\"carrier\":\"" << o.carrier << "\",\"resume\":" << (o.resume ? "true" : "false")
              << ",\"concurrency\":" << o.concurrency << ",\"seconds\":" << secs << ",\"completed\":" << stats.completed
              << ",\"errors\":" << stats.errors << ",\"resumed\":" << stats.resumed
              << ",\"not_resumed\":" << stats.not_resumed
              << ",\"rate\":" << static_cast<double>(stats.completed) / secs
              << ",\"p50_ms\":" << percentile(stats.latencies_ms, 0.5)
              << ",\"p99_ms\":" << percentile(stats.latencies_ms, 0.99)
              << ",\"first_error\":" << json_string(stats.first_error) << "}" << std::endl;
    return 0;
}
