#include "filter/engine.hpp"

#include "amtp/reply.hpp"
#include "amtp/reverse_dns.hpp"
#include "amtp/smtp_syntax.hpp"
#include "amtp/trace_headers.hpp"

#include <cctype>
#include <utility>

namespace amtp::opensmtpd {

struct Engine::Session {
    std::string id;
    std::optional<SessionKey> key;
    std::optional<Registration> registration;   // claimed with the gate's token
    bool admitted = false;                       // the connect phase let it in
    std::unique_ptr<ServerSession> shadow;
    // A phase request waiting: for the registration (connect) or the shadow's reply
    // (EHLO waits for DNS).
    std::string pending_phase;
    std::string pending_token;
    Clock::time_point wait_until{};
    std::optional<Reply> reply;          // the shadow's reply to the last command fed
    std::string mail_rewrite;            // MAIL's argument for smtpd, without MPC=
    bool shadow_in_data = false;
    bool data_failed = false;            // an internal error during data-line
    std::optional<Reply> data_refusal;   // DATA refused by the shadow
    std::optional<Reply> commit_refusal; // the end-of-data verdict, if negative
    // smtpd 6.8 also reports the end-of-data dot as a protocol-client line: that one
    // is not a command, and the shadow must not count it as an unknown one.
    bool dot_report_due = false;
};

EngineConfig make_engine_config(const Settings& settings, std::shared_ptr<const Policy> policy)
{
    EngineConfig c;
    auto pub = make_server_config(settings, policy, ListenerKind::public_network);
    auto priv = make_server_config(settings, policy, ListenerKind::private_network);
    // Profile B5: MPC= is taken on MAIL (the filter strips it for smtpd); a client
    // that fell back to the AMTP-MPC header carrier is served too.
    pub.accept_header_carrier = priv.accept_header_carrier = true;
    // smtpd speaks SMTP in plaintext behind the gate: the shadow never does STARTTLS.
    pub.starttls = priv.starttls = false;
    c.public_config = std::make_shared<const ServerConfig>(std::move(pub));
    c.private_config = std::make_shared<const ServerConfig>(std::move(priv));
    c.forward_confirm = settings.dns.forward_confirm;
    return c;
}

namespace {

Reply internal_error_reply()
{
    return make_reply(451, "4.3.0", "Temporary AMTP filter error");
}

std::string upper_verb(std::string_view line)
{
    return split_command(line).verb;
}

// MAIL's argument as smtpd should see it: the path and every parameter but MPC=
// (smtpd refuses a parameter it does not know).
std::optional<std::string> mail_without_mpc(std::string_view line)
{
    const Command c = split_command(line);
    const auto path = parse_path_command(c.argument, "FROM");
    if (!path)
        return std::nullopt;
    std::string out = "<" + path->address + ">";
    for (const auto& p : path->parameters) {
        if (p.keyword == "MPC")
            continue;
        out += " " + p.keyword;
        if (p.has_value)
            out += "=" + p.value;
    }
    return out;
}

void append_stuffed(std::string& out, std::string_view session, std::string_view token, std::string_view line)
{
    // Data lines go back to smtpd dot-stuffed, as they came.
    if (!line.empty() && line.front() == '.')
        out += dataline(session, token, "." + std::string(line));
    else
        out += dataline(session, token, line);
}

// `text` is CRLF-terminated lines (a last line without CRLF is taken as one too).
void append_lines(std::string& out, std::string_view session, std::string_view token, std::string_view text)
{
    std::size_t pos = 0;
    while (pos < text.size()) {
        const auto nl = text.find("\r\n", pos);
        if (nl == std::string_view::npos) {
            append_stuffed(out, session, token, text.substr(pos));
            return;
        }
        append_stuffed(out, session, token, text.substr(pos, nl - pos));
        pos = nl + 2;
    }
}

bool starts_with_nocase(std::string_view s, std::string_view prefix)
{
    if (s.size() < prefix.size())
        return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(s[i])) != std::tolower(static_cast<unsigned char>(prefix[i])))
            return false;
    return true;
}

// The length of the first header field of `message` (with its continuation lines)
// when it is a Received field: smtpd's own, which it writes first.
std::size_t smtpd_received_length(std::string_view message)
{
    if (!starts_with_nocase(message, "Received:"))
        return 0;
    std::size_t pos = 0;
    for (;;) {
        const auto nl = message.find("\r\n", pos);
        if (nl == std::string_view::npos)
            return message.size();
        pos = nl + 2;
        if (pos >= message.size() || (message[pos] != ' ' && message[pos] != '\t'))
            return pos;
    }
}

// smtpd treats its loopback listener as local submission and appends Date: and
// Message-ID: to a header block that lacks them, after the filters ran. This field
// marks where the header block ended when it left the filter, so the mda can drop
// exactly what smtpd appended (RFC 5321 s6.4: a relay should not add them).
const std::string header_end_field = "X-AMTP-Header-End: filter";

bool is_header_end_field(std::string_view line)
{
    return starts_with_nocase(line, "X-AMTP-Header-End:");
}

// The header block (without the blank line) and the rest, with any header-end field
// the client wrote itself removed (only ours may reach the mda).
std::pair<std::string, std::string_view> split_header(std::string_view rest)
{
    std::size_t end = rest.size();
    if (rest.substr(0, 2) == "\r\n")
        end = 0;
    else if (const auto blank = rest.find("\r\n\r\n"); blank != std::string_view::npos)
        end = blank + 2;
    std::string header;
    bool dropping = false;
    std::size_t pos = 0;
    const std::string_view block = rest.substr(0, end);
    while (pos < block.size()) {
        auto nl = block.find("\r\n", pos);
        const std::size_t next = nl == std::string_view::npos ? block.size() : nl + 2;
        const std::string_view line = block.substr(pos, next - pos);
        const bool continuation = !line.empty() && (line[0] == ' ' || line[0] == '\t');
        if (!continuation)
            dropping = is_header_end_field(line);
        if (!dropping)
            header.append(line.data(), line.size());
        pos = next;
    }
    if (!header.empty() && header.size() >= 2 && header.substr(header.size() - 2) != "\r\n")
        header += "\r\n";
    return {header, rest.substr(end)};
}

} // namespace

Engine::Engine(LogSink log, Emit emit) : log_(std::move(log)), emit_(std::move(emit))
{
}

Engine::~Engine() = default;

void Engine::configure(EngineConfig config, Resolver& resolver)
{
    config_ = std::move(config);
    resolver_ = &resolver;
    // Sessions that waited for the configuration can start now.
    for (auto& [id, s] : sessions_)
        if (s->pending_phase == "connect")
            attach(*s);
}

const std::vector<std::string>& Engine::phases()
{
    static const std::vector<std::string> p = {"connect", "helo", "ehlo", "mail-from", "rcpt-to", "data-line", "commit"};
    return p;
}

const std::vector<std::string>& Engine::reports()
{
    static const std::vector<std::string> r = {"link-connect", "link-disconnect", "protocol-client"};
    return r;
}

void Engine::emit(const std::string& lines)
{
    emit_(lines);
}

void Engine::log(const LogLine& line)
{
    if (log_)
        log_(line.str());
}

void Engine::on_smtpd_line(std::string_view line)
{
    const Event event = parse_event(line);
    if (const auto* m = std::get_if<Malformed>(&event)) {
        log(LogLine("protocol").kv("result", "ignored").kv("why", m->why).kv("line", line.substr(0, 200)));
        return;
    }
    if (const auto* c = std::get_if<ConfigEvent>(&event)) {
        handle(*c);
        return;
    }
    if (const auto* r = std::get_if<ReportEvent>(&event)) {
        try {
            handle(*r);
        } catch (const std::exception& e) {
            log(LogLine("report").kv("session", r->session).kv("result", "error").kv("detail", e.what()));
        }
        return;
    }
    const auto& f = std::get<FilterEvent>(event);
    try {
        handle(f);
    } catch (const std::exception& e) {
        // Whatever went wrong, the request is answered: smtpd must not wait forever.
        log(LogLine("filter").kv("session", f.session).kv("phase", f.phase).kv("result", "error").kv("detail", e.what()));
        auto it = sessions_.find(f.session);
        if (f.phase == "data-line") {
            if (it != sessions_.end())
                it->second->data_failed = true;
            if (f.param == ".")
                emit(dataline(f.session, f.token, "."));
        } else {
            emit(reject(f.session, f.token, internal_error_reply()));
        }
    }
}

void Engine::handle(const ConfigEvent& e)
{
    if (e.key == "ready") {
        emit(register_lines(phases(), reports()));
        return;
    }
    log(LogLine("config").kv("key", e.key).kv("value", e.value));
}

void Engine::handle(const ReportEvent& e)
{
    if (e.event == "link-connect") {
        auto& s = sessions_[e.session];
        if (!s) {
            s = std::make_unique<Session>();
            s->id = e.session;
        }
        // rdns|fcrdns|src|dest: smtpd's own rDNS is ignored (the core does it).
        const auto f = split_fields(e.rest);
        if (f.size() >= 4)
            s->key = SessionKey::parse(f[f.size() - 2]);
        return;
    }
    if (e.event == "link-disconnect") {
        sessions_.erase(e.session);
        return;
    }
    if (e.event == "protocol-client") {
        auto it = sessions_.find(e.session);
        if (it == sessions_.end())
            return;
        if (auto token = gate_token_of(e.rest)) {
            claim(*it->second, *token); // the gate's own line: never the client's command
            return;
        }
        if (std::exchange(it->second->dot_report_due, false) && e.rest == ".")
            return;
        if (it->second->shadow)
            feed(*it->second, e.rest);
    }
}

void Engine::handle(const FilterEvent& e)
{
    auto& s = sessions_[e.session];
    if (!s) {
        s = std::make_unique<Session>();
        s->id = e.session;
    }
    if (e.phase == "data-line") {
        on_data_line(*s, e);
        return;
    }
    on_request(*s, e);
}

void Engine::on_request(Session& s, const FilterEvent& e)
{
    if (e.phase == "connect") {
        if (s.shadow || s.admitted) {
            emit(proceed(s.id, e.token));
            return;
        }
        s.pending_phase = "connect";
        s.pending_token = e.token;
        s.wait_until = Clock::now() + config_.registration_wait;
        attach(s);
        return;
    }
    if (!s.shadow) {
        // The gate's token was not shown (a connection the gate did not make), or no
        // connect phase was seen: no identity, nothing allowed.
        log(LogLine(e.phase).kv("session", s.id).kv("peer", s.key ? s.key->str() : "unknown")
                .kv("result", "fail").kv("reason", reason_name(Reason::not_registered)).kv("why", "no_gate_token"));
        emit(disconnect(s.id, e.token, reply_for(Reason::not_registered)));
        return;
    }
    if (e.phase == "commit") {
        const auto refusal = std::exchange(s.commit_refusal, std::nullopt);
        emit(refusal ? reject(s.id, e.token, *refusal) : proceed(s.id, e.token));
        return;
    }
    if (e.phase == "helo" || e.phase == "ehlo" || e.phase == "mail-from" || e.phase == "rcpt-to") {
        s.pending_phase = e.phase;
        s.pending_token = e.token;
        // Never stall smtpd: a shadow with no answer and nothing in flight (it should
        // not happen) gets the temporary error rather than a wait without end.
        if (s.reply || !s.shadow->busy())
            answer(s, e.phase, e.token);
        return;
    }
    // A phase we did not register for: never hold smtpd up.
    emit(proceed(s.id, e.token));
}

void Engine::answer(Session& s, const std::string& phase, const std::string& token)
{
    s.pending_phase.clear();
    s.pending_token.clear();
    const Reply r = std::exchange(s.reply, std::nullopt).value_or(internal_error_reply());
    if (s.shadow->wants_close() && r.code == 421) {
        emit(disconnect(s.id, token, r));
    } else if (!r.positive()) {
        emit(reject(s.id, token, r));
    } else if (phase == "mail-from") {
        emit(rewrite(s.id, token, s.mail_rewrite));
    } else {
        emit(proceed(s.id, token));
    }
}

void Engine::attach(Session& s)
{
    // The connect phase only checks that the gate registered this address and port;
    // the identity goes to the session that shows the registration's token (claim).
    if (!s.key || !unclaimed_.count(*s.key) || !configured() || s.pending_phase != "connect")
        return;
    s.admitted = true;
    const std::string token = std::exchange(s.pending_token, std::string{});
    s.pending_phase.clear();
    emit(proceed(s.id, token));
}

namespace {
bool same_secret(std::string_view a, std::string_view b)
{
    if (a.size() != b.size())
        return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}
} // namespace

void Engine::claim(Session& s, std::string_view token)
{
    if (s.shadow)
        return;
    auto it = s.key ? unclaimed_.find(*s.key) : unclaimed_.end();
    if (it == unclaimed_.end() || it->second.token.empty() || !same_secret(it->second.token, token) ||
        !configured()) {
        log(LogLine("claim").kv("session", s.id).kv("peer", s.key ? s.key->str() : "unknown")
                .kv("result", "fail").kv("reason", reason_name(Reason::not_registered)).kv("why", "token_mismatch"));
        return;
    }
    // One registration serves one session.
    s.registration = std::move(it->second);
    unclaimed_.erase(it);
    start_shadow(s);
}

void Engine::start_shadow(Session& s)
{
    const Registration& r = *s.registration;
    auto config = r.listener == ListenerKind::public_network ? config_.public_config : config_.private_config;
    s.shadow = std::make_unique<ServerSession>(config, r.key.address, s.id, log_);
    s.shadow->start(r.tls);
    (void)s.shadow->take_output(); // smtpd sends its own greeting
    drain(s);
    s.reply.reset();
}

void Engine::feed(Session& s, std::string_view command)
{
    if (s.shadow_in_data) {
        // smtpd reports commands only outside DATA: it refused the DATA the shadow
        // accepted (e.g. a recipient smtpd itself turned down). Bring the shadow back
        // to command state without a message.
        log(LogLine("shadow").kv("session", s.id).kv("result", "resync").kv("why", "data_refused_by_smtpd"));
        s.shadow_in_data = false;
        s.shadow->receive(".\r\n");
        if (s.shadow->take_delivery())
            s.shadow->delivery_done(Reason::storage_temporary);
        (void)s.shadow->take_output();
    }
    s.reply.reset();
    const std::string verb = upper_verb(command);
    if (verb == "MAIL")
        s.mail_rewrite = mail_without_mpc(command).value_or(std::string());
    std::string line(command);
    line += "\r\n";
    s.shadow->receive(line);
    drain(s);
    if (verb == "DATA" && s.reply) {
        s.shadow_in_data = s.reply->code == 354;
        s.data_refusal = s.shadow_in_data ? std::nullopt : s.reply;
        s.data_failed = false;
    }
}

void Engine::drain(Session& s)
{
    if (auto address = s.shadow->take_lookup()) {
        const std::string id = s.id;
        lookup_client_names(*resolver_, *address, config_.forward_confirm, [this, id](ReverseDnsResult result) {
            auto it = sessions_.find(id);
            if (it == sessions_.end() || !it->second->shadow)
                return; // the session ended meanwhile
            it->second->shadow->reverse_dns_done(std::move(result));
            drain(*it->second);
        });
    }
    const std::string out = s.shadow->take_output();
    if (!out.empty()) {
        const Reply r = last_reply(out);
        if (r.code != 0)
            s.reply = r;
    }
    if (s.reply && !s.pending_phase.empty() && s.pending_phase != "connect") {
        const std::string phase = s.pending_phase;
        const std::string token = s.pending_token;
        answer(s, phase, token);
    }
}

void Engine::on_data_line(Session& s, const FilterEvent& e)
{
    if (e.param != ".") {
        if (s.shadow && s.shadow_in_data && !s.data_failed)
            s.shadow->receive(e.param + "\r\n");
        return;
    }
    s.dot_report_due = true;
    std::string out;
    if (!s.shadow || !s.shadow_in_data || s.data_failed) {
        s.commit_refusal = s.data_refusal.value_or(internal_error_reply());
        s.data_refusal.reset();
        emit(dataline(s.id, e.token, "."));
        return;
    }
    s.shadow_in_data = false;
    s.shadow->receive(".\r\n");
    auto delivery = s.shadow->take_delivery();
    const std::string verdict = s.shadow->take_output();
    if (!delivery) {
        const Reply r = last_reply(verdict);
        s.commit_refusal = r.code >= 400 ? r : internal_error_reply();
        emit(dataline(s.id, e.token, "."));
        return;
    }
    // Our trace fields on top, smtpd's own Received below them (it names the same
    // hop with smtpd's queue id), then the draft's MPC field, then the message.
    const std::string_view message = delivery->message;
    const std::size_t received = smtpd_received_length(message);
    append_lines(out, s.id, e.token, delivery->trace);
    append_lines(out, s.id, e.token, message.substr(0, received));
    append_lines(out, s.id, e.token, mpc_field(delivery->envelope.mpc));
    const auto [header, body] = split_header(message.substr(received));
    append_lines(out, s.id, e.token, header);
    out += dataline(s.id, e.token, header_end_field);
    append_lines(out, s.id, e.token, body);
    out += dataline(s.id, e.token, ".");
    emit(out);
    s.commit_refusal.reset();
    // smtpd stores the message and answers the dot; the shadow just moves on.
    s.shadow->delivery_done(Reason::none);
    (void)s.shadow->take_output();
}

void Engine::on_gate(const GateMessage& m)
{
    if (!m.registration) {
        unclaimed_.erase(m.record.key);
        return;
    }
    unclaimed_[m.record.key] = m.record;
    for (auto& [id, s] : sessions_)
        if (s->pending_phase == "connect" && s->key && *s->key == m.record.key)
            attach(*s);
}

void Engine::tick(Clock::time_point now)
{
    for (auto& [id, s] : sessions_) {
        if (s->pending_phase != "connect" || now < s->wait_until)
            continue;
        const std::string token = std::exchange(s->pending_token, std::string{});
        s->pending_phase.clear();
        log(LogLine("connect").kv("session", id).kv("peer", s->key ? s->key->str() : "unknown")
                .kv("result", "fail").kv("reason", reason_name(Reason::not_registered)));
        emit(disconnect(id, token, reply_for(Reason::not_registered)));
    }
}

Engine::Clock::time_point Engine::next_deadline() const
{
    auto best = Clock::time_point::max();
    for (const auto& [id, s] : sessions_)
        if (s->pending_phase == "connect" && s->wait_until < best)
            best = s->wait_until;
    return best;
}

} // namespace amtp::opensmtpd
