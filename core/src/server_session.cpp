#include "amtp/server_session.hpp"

#include "amtp/smtp_syntax.hpp"
#include "amtp/trace_headers.hpp"

#include <utility>

namespace amtp {

namespace {

// RFC 5321 s4.5.3.1.4 allows 512 octets; ESMTP parameters (SIZE, MPC, BODY) may extend
// it, so allow more, but never an unbounded buffer.
constexpr std::size_t max_command_line = 2048;
// RFC 5322: 998 characters plus CRLF.
constexpr std::size_t max_text_line = 998;

} // namespace

ServerSession::ServerSession(std::shared_ptr<const ServerConfig> config, IpAddress peer, std::string session_id,
                             LogSink log)
    : config_(config), rules_(config), facts_(rules_.open(peer, std::move(session_id), config->listener)),
      log_(std::move(log))
{
}

void ServerSession::start(std::optional<TlsInfo> tls, std::time_t)
{
    if (tls) {
        facts_.tls = std::move(tls);
        if (facts_.tls->identity.ok())
            facts_.identity = facts_.tls->identity.identity;
    }
    // The PTR of the peer does not depend on what it says: ask at once, so the answer
    // is usually there when EHLO arrives. Private networks skip the PTR rule (s7).
    if (facts_.listener == ListenerKind::public_network) {
        lookup_requested_ = true;
        lookup_ = facts_.peer;
    }
    log(rules_.connect_log(facts_));
    reply(make_reply(220, "", config_->hostname + " AMTP service ready"));
}

void ServerSession::tls_established(TlsInfo tls)
{
    wants_tls_ = false;
    in_.clear(); // nothing sent before the handshake may be acted on (profile B1)
    log(rules_.tls_established(facts_, std::move(tls)));
}

void ServerSession::receive(std::string_view bytes)
{
    if (close_ || wants_tls_)
        return; // after STARTTLS's 220, plaintext is discarded (command injection)
    if (in_.size() + bytes.size() > max_pending_input) {
        // The host ignored wants_input(): do not buffer a flood, end the session.
        in_.clear();
        close_with(Reason::input_overflow);
        return;
    }
    in_.append(bytes.data(), bytes.size());
    process();
}

void ServerSession::output_sent()
{
    process();
}

bool ServerSession::wants_input() const
{
    if (close_ || wants_tls_ || busy() || out_.size() >= max_pending_output)
        return false;
    // A complete line still held means process() stopped for the output bound.
    return in_.find('\n') == std::string::npos;
}

void ServerSession::process()
{
    // Stops while max_pending_output octets of replies wait: a peer that does not read
    // them gets no more processed until the host has written them (output_sent).
    while (!close_ && !wants_tls_ && !busy() && out_.size() < max_pending_output) {
        const auto lf = in_.find('\n');
        if (lf == std::string::npos) {
            const std::size_t limit = phase_ == Phase::data ? max_text_line + 2 : max_command_line;
            if (in_.size() > limit) {
                // Keep counting a data line's bytes toward the size limit; drop the rest.
                if (phase_ == Phase::data) {
                    message_facts_.size += in_.size();
                    message_facts_.line_too_long = true;
                }
                in_.clear();
                discarding_long_line_ = true;
            }
            return;
        }
        std::string line = in_.substr(0, lf);
        in_.erase(0, lf + 1);
        const bool crlf = !line.empty() && line.back() == '\r';
        if (crlf)
            line.pop_back();
        if (discarding_long_line_) {
            discarding_long_line_ = false;
            if (phase_ == Phase::data) {
                message_facts_.size += line.size() + 2;
                previous_line_crlf_ = crlf;
            } else {
                refuse("command", Reason::line_too_long);
            }
            continue;
        }
        if (phase_ == Phase::data)
            handle_data_line(line, crlf);
        else
            handle_command(line);
        maybe_shutdown();
    }
}

void ServerSession::handle_command(std::string_view line)
{
    const Command cmd = split_command(line);
    const std::string& v = cmd.verb;
    if (v == "HELO") {
        apply(rules_.helo(facts_));
        return;
    }
    if (v == "QUIT") {
        reply(make_reply(221, "2.0.0", config_->hostname + " closing connection"));
        close_ = true;
        phase_ = Phase::closed;
        return;
    }
    if (v == "NOOP") {
        reply(make_reply(250, "2.0.0", "OK"));
        return;
    }
    if (v == "RSET") {
        reset_transaction(facts_);
        reply(make_reply(250, "2.0.0", "OK"));
        return;
    }
    if (v == "EHLO") {
        const Verdict verdict = rules_.ehlo(facts_, cmd.argument);
        if (!verdict.needs_ptr) {
            apply(verdict);
            if (verdict.reason == Reason::dns_temporary)
                lookup_requested_ = false;   // the failure is forgotten: a later EHLO asks again
            return;
        }
        waiting_dns_ = true;
        if (!lookup_requested_) {
            lookup_requested_ = true;
            lookup_ = facts_.peer;
        }
        return;
    }
    if (v == "STARTTLS") {
        cmd_starttls();
        return;
    }
    if (tls_pending()) {
        refuse("command", Reason::tls_required);
        return;
    }
    if (v == "MAIL") {
        if (sequence_allows("mail", false))
            apply(rules_.mail(facts_, cmd.argument));
    } else if (v == "RCPT") {
        if (sequence_allows("rcpt", true))
            apply(rules_.rcpt(facts_, cmd.argument));
    } else if (v == "DATA") {
        if (!sequence_allows("data", true))
            return;
        const Verdict verdict = rules_.data(facts_);
        apply(verdict);
        if (verdict.refused())
            return;
        message_.clear();
        message_facts_ = MessageFacts{};
        data_too_big_ = false;
        previous_line_crlf_ = true;
        headers_ = HeaderScanner(authserv_id(config_->hostname));
        phase_ = Phase::data;
    } else if (v == "VRFY") {
        reply(make_reply(252, "2.5.0", "Cannot VRFY user; try RCPT to attempt delivery"));
    } else if (v == "EXPN" || v == "HELP" || v == "TURN" || v == "ETRN") {
        refuse("command", Reason::not_implemented, v);
    } else {
        refuse("command", Reason::unknown_command, v);
    }
}

void ServerSession::cmd_starttls()
{
    if (!tls_pending()) {
        refuse("starttls", Reason::tls_already_active);
        return;
    }
    reply(make_reply(220, "2.0.0", "Ready to start TLS"));
    wants_tls_ = true;
    in_.clear();
}

void ServerSession::reverse_dns_done(ReverseDnsResult result)
{
    const Verdict verdict = rules_.ehlo_ptr(facts_, std::move(result));
    if (verdict.reason == Reason::dns_temporary)
        lookup_requested_ = false;   // the failure is forgotten: a later EHLO asks again
    if (waiting_dns_) {
        waiting_dns_ = false;
        apply(verdict);
        process();
    }
}

bool ServerSession::sequence_allows(std::string_view event, bool needs_transaction)
{
    if (!facts_.authenticated) {
        refuse(event, Reason::ehlo_first);
        return false;
    }
    if (facts_.in_mail != needs_transaction) {
        refuse(event, Reason::bad_sequence);
        return false;
    }
    return true;
}

void ServerSession::handle_data_line(std::string_view line, bool crlf)
{
    // Only CRLF "." CRLF ends the data: a bare LF never does (SMTP smuggling).
    if (line == "." && crlf && previous_line_crlf_) {
        finish_data();
        return;
    }
    if (!crlf)
        message_facts_.bare_linefeed = true;
    previous_line_crlf_ = crlf;
    if (!line.empty() && line.front() == '.')
        line.remove_prefix(1);
    message_facts_.size += line.size() + 2;
    if (message_facts_.size > config_->limits.max_message_size)
        data_too_big_ = true;   // keep counting, stop keeping
    if (line.size() > max_text_line)
        message_facts_.line_too_long = true;
    const bool keep = headers_.line(line);
    // Lines the scanner held (an Authentication-Results field not yet known to be
    // someone else's) come back before the line that settled them.
    for (const auto& held : headers_.take_released())
        keep_line(held);
    if (keep)
        keep_line(line);
}

void ServerSession::keep_line(std::string_view line)
{
    if (data_too_big_)
        return;
    message_.append(line.data(), line.size());
    message_ += "\r\n";
}

void ServerSession::finish_data()
{
    phase_ = Phase::command;
    headers_.finish();
    for (const auto& held : headers_.take_released())
        keep_line(held);
    message_facts_.take_header(headers_);
    const Verdict verdict = rules_.message(facts_, message_facts_);
    if (verdict.refused()) {
        message_.clear();
        apply(verdict);
        return;
    }
    DeliveryRequest d;
    d.envelope = facts_.envelope;
    d.trace = rules_.trace_fields(facts_, std::time(nullptr));
    d.message = std::exchange(message_, std::string{});
    d.session_id = facts_.session_id;
    d.identity = facts_.identity;
    delivery_ = std::move(d);
    waiting_delivery_ = true;
}

void ServerSession::delivery_done(Reason failure, std::string_view detail)
{
    waiting_delivery_ = false;
    if (failure == Reason::none) {
        ++messages_accepted_;
        apply(rules_.accepted(facts_, message_facts_, facts_.session_id + "-" + std::to_string(messages_accepted_),
                              detail));
    } else {
        apply(rules_.store_failed(facts_, failure, detail));
    }
    maybe_shutdown();
    process();
}

void ServerSession::timeout()
{
    if (close_)
        return;
    close_with(Reason::timeout);
}

void ServerSession::shutdown()
{
    shutdown_requested_ = true;
    maybe_shutdown();
}

void ServerSession::maybe_shutdown()
{
    if (!shutdown_requested_ || close_ || facts_.in_mail || phase_ != Phase::command || busy())
        return;
    close_with(Reason::shutting_down);
}

std::string ServerSession::take_output()
{
    return std::exchange(out_, std::string{});
}

std::optional<IpAddress> ServerSession::take_lookup()
{
    return std::exchange(lookup_, std::nullopt);
}

std::optional<DeliveryRequest> ServerSession::take_delivery()
{
    return std::exchange(delivery_, std::nullopt);
}

std::chrono::seconds ServerSession::current_timeout() const
{
    return phase_ == Phase::data ? config_->limits.data_timeout : config_->limits.command_timeout;
}

void ServerSession::reply(const Reply& r)
{
    out_ += r.wire();
}

void ServerSession::apply(const Verdict& v)
{
    reply(v.reply);
    log(v.log);
    if (!v.refused() || !v.counts_as_error)
        return;
    if (++errors_ >= config_->limits.max_errors)
        close_with(Reason::too_many_errors);
}

void ServerSession::refuse(std::string_view event, Reason reason, std::string_view detail, bool counts_as_error)
{
    apply(rules_.refusal(facts_, event, reason, detail, counts_as_error));
}

void ServerSession::close_with(Reason reason)
{
    const Verdict v = rules_.refusal(facts_, "close", reason, {}, false);
    reply(v.reply);
    log(v.log);
    close_ = true;
    phase_ = Phase::closed;
}

void ServerSession::log(const std::string& line)
{
    if (log_ && !line.empty())
        log_(line);
}

} // namespace amtp
