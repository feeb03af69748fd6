// The filter's decisions. For every smtpd session the engine runs a core
// ServerSession (the same one amtpd runs) as a shadow of smtpd's dialogue: each
// command smtpd reports (protocol-client) is fed to it, and the phase request that
// follows is answered with the shadow's verdict, so replies are amtpd's to the letter.
// The identity comes from the gate's registration; DNS from the core's resolver.
//   connect   : the gate must have registered the session, else it is refused
//   (token)   : the gate's first line on its connection carries the registration's
//               secret token; only the session that shows it gets the identity
//   helo/ehlo : 504 5.5.1 / certificate and PTR binding (504 5.7.1, 451 4.4.3)
//   mail-from : MPC= checked, then the command rewritten without it for smtpd
//   rcpt-to   : relay and per-recipient rules
//   data-line : held until the end; then trace fields + smtpd's Received + MPC: +
//               the message (AMTP-MPC carrier removed); a pre-existing MPC: refused
//   commit    : the end-of-data verdict
#pragma once

#include "common/registration.hpp"
#include "filter/protocol.hpp"

#include "amtp/log.hpp"
#include "amtp/resolver.hpp"
#include "amtp/server_session.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace amtp::opensmtpd {

struct EngineConfig {
    std::shared_ptr<const ServerConfig> public_config;
    std::shared_ptr<const ServerConfig> private_config;
    bool forward_confirm = false;
    // How long a connect phase waits for the gate's registration (it normally is
    // there before smtpd even accepts the loopback connection).
    std::chrono::milliseconds registration_wait{3000};
};

// The engine's configuration from the site's settings and policy, as the filter runs:
// the shadow sessions take MPC= on MAIL and the AMTP-MPC header carrier (profile B5),
// and never STARTTLS (smtpd speaks plaintext behind the gate).
EngineConfig make_engine_config(const Settings& settings, std::shared_ptr<const Policy> policy);

class Engine {
public:
    using Clock = std::chrono::steady_clock;
    using Emit = std::function<void(const std::string& lines)>;

    Engine(LogSink log, Emit emit);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;
    // The configuration arrives from the gate after smtpd has started the filter;
    // until then connect phases wait (as for a late registration).
    void configure(EngineConfig config, Resolver& resolver);
    bool configured() const { return config_.public_config != nullptr; }

    // One line from smtpd (without LF). Never throws; always answers a request.
    void on_smtpd_line(std::string_view line);
    void on_gate(const GateMessage& message);
    // Expires registration waits.
    void tick(Clock::time_point now = Clock::now());
    Clock::time_point next_deadline() const;
    std::size_t sessions() const { return sessions_.size(); }

    static const std::vector<std::string>& phases();
    static const std::vector<std::string>& reports();

private:
    struct Session;
    void handle(const ConfigEvent& e);
    void handle(const ReportEvent& e);
    void handle(const FilterEvent& e);
    void on_request(Session& s, const FilterEvent& e);
    void on_data_line(Session& s, const FilterEvent& e);
    void attach(Session& s);
    void claim(Session& s, std::string_view token);
    void start_shadow(Session& s);
    void feed(Session& s, std::string_view command);
    void drain(Session& s);
    void answer(Session& s, const std::string& phase, const std::string& token);
    void emit(const std::string& lines);
    void log(const LogLine& line);

    Resolver* resolver_ = nullptr;
    LogSink log_;
    Emit emit_;
    EngineConfig config_;
    std::map<std::string, std::unique_ptr<Session>> sessions_;
    std::map<SessionKey, Registration> unclaimed_;
};

} // namespace amtp::opensmtpd
