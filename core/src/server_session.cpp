#include "amtp/server_session.hpp"

#include "amtp/names.hpp"
#include "amtp/smtp_syntax.hpp"
#include "amtp/trace_headers.hpp"

#include <algorithm>
#include <charconv>

namespace amtp {

namespace {

// RFC 5321 s4.5.3.1.4 allows 512 octets; ESMTP parameters (SIZE, MPC, BODY) may extend
// it, so allow more, but never an unbounded buffer.
constexpr std::size_t max_command_line = 2048;
// RFC 5322: 998 characters plus CRLF.
constexpr std::size_t max_text_line = 998;

bool contains(const std::vector<std::string>& v, std::string_view s)
{
    return std::find(v.begin(), v.end(), s) != v.end();
}

std::string join(const std::vector<std::string>& v)
{
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : ",") + s;
    return out;
}

} // namespace

ServerConfig make_server_config(const Settings& settings, std::shared_ptr<const Policy> policy,
                                ListenerKind listener)
{
    ServerConfig c;
    c.hostname = settings.hostname;
    c.listener = listener;
    c.starttls = settings.listen.starttls;
    c.accept_header_carrier = settings.listen.header_carrier;
    c.local_domains = settings.delivery.local_domains;
    c.limits = settings.limits;
    c.policy = std::move(policy);
    c.recipients = LocalRecipients::from_settings(settings);
    return c;
}

ServerSession::ServerSession(std::shared_ptr<const ServerConfig> config, IpAddress peer, std::string session_id,
                             LogSink log)
    : config_(std::move(config)), peer_(peer), session_id_(std::move(session_id)), log_(std::move(log))
{
}

void ServerSession::start(std::optional<TlsInfo> tls, std::time_t now)
{
    started_ = now;
    if (tls) {
        tls_ = std::move(tls);
        if (tls_->identity.ok())
            identity_ = tls_->identity.identity;
    }
    // The PTR of the peer does not depend on what it says: ask at once, so the answer
    // is usually there when EHLO arrives. Private networks skip the PTR rule (s7).
    if (config_->listener == ListenerKind::public_network) {
        lookup_requested_ = true;
        lookup_ = peer_;
    }
    LogLine line("connect");
    line.kv("session", session_id_).kv("peer", peer_.str());
    line.kv("listener", config_->listener == ListenerKind::public_network ? "public" : "private");
    if (tls_) {
        line.kv("tls", tls_->version).kv("cert", tls_->identity.ok() ? "verified" : reason_name(tls_->identity.reason));
        if (identity_)
            line.kv("subject", identity_->subject).kv("sha256", identity_->sha256);
    }
    if (log_)
        log_(line.str());
    reply(make_reply(220, "", config_->hostname + " AMTP service ready"));
}

void ServerSession::tls_established(TlsInfo tls)
{
    wants_tls_ = false;
    in_.clear(); // nothing sent before the handshake may be acted on (profile B1)
    tls_ = std::move(tls);
    identity_.reset();
    if (tls_->identity.ok())
        identity_ = tls_->identity.identity;
    authenticated_ = false;
    ehlo_name_.clear();
    reset_transaction();
    LogLine line("tls");
    line.kv("session", session_id_).kv("tls", tls_->version);
    line.kv("cert", tls_->identity.ok() ? "verified" : reason_name(tls_->identity.reason));
    if (log_)
        log_(line.str());
}

void ServerSession::receive(std::string_view bytes)
{
    if (close_ || wants_tls_)
        return; // after STARTTLS's 220, plaintext is discarded (command injection)
    if (in_.size() + bytes.size() > max_pending_input) {
        // The host ignored wants_input(): do not buffer a flood, end the session.
        in_.clear();
        reply(reply_for(Reason::input_overflow));
        log_decision("close", Reason::input_overflow);
        close_ = true;
        phase_ = Phase::closed;
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
                    message_size_ += in_.size();
                    data_line_too_long_ = true;
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
                message_size_ += line.size() + 2;
                previous_line_crlf_ = crlf;
            } else {
                refuse(Reason::line_too_long);
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
        refuse(Reason::helo_refused);
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
        reset_transaction();
        reply(make_reply(250, "2.0.0", "OK"));
        return;
    }
    if (v == "EHLO") {
        cmd_ehlo(cmd.argument);
        return;
    }
    if (v == "STARTTLS") {
        cmd_starttls();
        return;
    }
    if (tls_pending()) {
        refuse(Reason::tls_required);
        return;
    }
    if (v == "MAIL")
        cmd_mail(cmd.argument);
    else if (v == "RCPT")
        cmd_rcpt(cmd.argument);
    else if (v == "DATA")
        cmd_data();
    else if (v == "VRFY")
        reply(make_reply(252, "2.5.0", "Cannot VRFY user; try RCPT to attempt delivery"));
    else if (v == "EXPN" || v == "HELP" || v == "TURN" || v == "ETRN")
        refuse(Reason::not_implemented);
    else
        refuse(Reason::unknown_command);
}

void ServerSession::cmd_starttls()
{
    if (!tls_pending()) {
        refuse(Reason::tls_already_active);
        return;
    }
    reply(make_reply(220, "2.0.0", "Ready to start TLS"));
    wants_tls_ = true;
    in_.clear();
}

void ServerSession::cmd_ehlo(const std::string& argument)
{
    reset_transaction();
    authenticated_ = false;
    ehlo_name_.clear();
    if (tls_pending()) {
        // Before TLS (STARTTLS mode) nothing is checked: the post-TLS EHLO is (B1).
        Reply r = make_reply(250, "", config_->hostname);
        r.more = {"STARTTLS", "ENHANCEDSTATUSCODES"};
        reply(r);
        return;
    }
    const auto name = normalize_host_name(argument);
    if (!name || !is_fully_qualified(*name)) {
        refuse(Reason::ehlo_syntax);
        log_decision("ehlo", Reason::ehlo_syntax, "ehlo", argument);
        return;
    }
    if (!tls_ || !tls_->identity.ok()) {
        const Reason r = tls_ ? tls_->identity.reason : Reason::no_client_cert;
        refuse(r);
        log_decision("ehlo", r, "ehlo", *name);
        return;
    }
    if (!client_name_matches(identity_->names, *name)) {
        refuse(Reason::ehlo_not_in_cert);
        log_decision("ehlo", Reason::ehlo_not_in_cert, "ehlo", *name);
        return;
    }
    pending_ehlo_ = *name;
    if (config_->listener == ListenerKind::private_network) {
        authenticated_ = true;
        ehlo_name_ = *name;
        reply(ehlo_reply());
        log_decision("ehlo", Reason::none, "ehlo", *name);
        return;
    }
    if (!reverse_) {
        waiting_dns_ = true;
        if (!lookup_requested_) {
            lookup_requested_ = true;
            lookup_ = peer_;
        }
        return;
    }
    finish_ehlo();
}

void ServerSession::reverse_dns_done(ReverseDnsResult result)
{
    reverse_ = std::move(result);
    if (waiting_dns_) {
        waiting_dns_ = false;
        finish_ehlo();
        process();
    }
}

void ServerSession::finish_ehlo()
{
    const Reason r = check_ptr(*reverse_, pending_ehlo_);
    if (r != Reason::none) {
        refuse(r);
        log_decision("ehlo", r, "ehlo", pending_ehlo_);
        if (reverse_->status == DnsStatus::temporary) {
            // A later EHLO in this session asks again rather than reusing a failure.
            reverse_.reset();
            lookup_requested_ = false;
        }
        return;
    }
    authenticated_ = true;
    ehlo_name_ = pending_ehlo_;
    ptr_name_ = pending_ehlo_;
    reply(ehlo_reply());
    log_decision("ehlo", Reason::none, "ehlo", ehlo_name_);
}

Reply ServerSession::ehlo_reply() const
{
    Reply r = make_reply(250, "", config_->hostname + " greets " + ehlo_name_);
    if (config_->policy && !config_->policy->advertise.empty())
        r.more.push_back(config_->policy->advertise.ehlo_line());
    r.more.push_back("PIPELINING");
    r.more.push_back("8BITMIME");
    r.more.push_back("SIZE " + std::to_string(config_->limits.max_message_size));
    r.more.push_back("ENHANCEDSTATUSCODES");
    return r;
}

bool ServerSession::sequence_allows(bool needs_transaction)
{
    if (!authenticated_) {
        refuse(Reason::ehlo_first);
        return false;
    }
    if (in_mail_ != needs_transaction) {
        refuse(Reason::bad_sequence);
        return false;
    }
    return true;
}

void ServerSession::cmd_mail(const std::string& argument)
{
    if (!sequence_allows(false))
        return;
    const auto path = parse_path_command(argument, "FROM");
    if (!path) {
        refuse(Reason::syntax_error);
        return;
    }
    std::string sender;
    if (!path->address.empty()) {
        const auto box = parse_mailbox(path->address);
        if (!box) {
            refuse(Reason::bad_sender);
            return;
        }
        sender = box->str();
    }
    for (const auto& p : path->parameters) {
        if (p.keyword == "MPC")
            continue;
        if (p.keyword == "SIZE") {
            std::uint64_t size = 0;
            const auto [ptr, ec] = std::from_chars(p.value.data(), p.value.data() + p.value.size(), size);
            if (!p.has_value || ec != std::errc() || ptr != p.value.data() + p.value.size()) {
                refuse(Reason::syntax_error);
                return;
            }
            if (size > config_->limits.max_message_size) {
                refuse(Reason::message_too_big, {}, false);
                return;
            }
        } else if (p.keyword == "BODY") {
            if (p.value != "7BIT" && p.value != "8BITMIME") {
                refuse(Reason::syntax_error);
                return;
            }
        } else {
            refuse(Reason::unknown_parameter, p.keyword);
            return;
        }
    }
    const MpcParameter mpc = mpc_parameter(path->parameters, !config_->accept_header_carrier);
    if (mpc.reason != Reason::none) {
        refuse(mpc.reason);
        log_decision("mail", mpc.reason, "sender", sender);
        return;
    }
    if (mpc.value) {
        if (config_->policy && !config_->policy->advertise.allows(*mpc.value)) {
            refuse(Reason::mpc_denied, {}, false);
            log_decision("mail", Reason::mpc_denied, "mpc", mpc.value->str());
            return;
        }
        envelope_.mpc = *mpc.value;
        mpc_from_parameter_ = true;
    }
    in_mail_ = true;
    envelope_.sender = sender;
    reply(make_reply(250, "2.1.0", "Sender OK"));
    log_decision("mail", Reason::none, "mpc", mpc.value ? mpc.value->str() : "header");
}

void ServerSession::cmd_rcpt(const std::string& argument)
{
    if (!sequence_allows(true))
        return;
    const auto path = parse_path_command(argument, "TO");
    if (!path) {
        refuse(Reason::syntax_error);
        return;
    }
    if (!path->parameters.empty()) {
        refuse(Reason::unknown_parameter, path->parameters.front().keyword);
        return;
    }
    const auto box = parse_mailbox(path->address);
    if (!box) {
        refuse(Reason::bad_recipient);
        return;
    }
    const std::string address = box->str();
    if (envelope_.recipients.size() >= config_->limits.max_recipients) {
        refuse(Reason::too_many_recipients, {}, false);
        return;
    }
    const bool local = contains(config_->local_domains, box->domain);
    // A message received over a public connection is never relayed over another
    // public connection (draft s5.1).
    if (!local && config_->listener == ListenerKind::public_network) {
        refuse(Reason::relay_denied);
        log_decision("rcpt", Reason::relay_denied, "rcpt", address);
        return;
    }
    if (local && config_->recipients) {
        // Before the MPC rules: an unknown mailbox is the same answer for every MPC.
        const RecipientVerdict v = config_->recipients->check(address);
        if (v.reason != Reason::none) {
            refuse(v.reason, {}, v.reason == Reason::unknown_recipient);
            log_decision("rcpt", v.reason, "rcpt", address);
            if (log_ && v.reason == Reason::storage_temporary)
                log_(LogLine("rcpt").kv("session", session_id_).kv("rcpt", address).kv("detail", v.detail).str());
            return;
        }
    }
    if (mpc_from_parameter_ && config_->policy && !config_->policy->recipient_allows(address, envelope_.mpc)) {
        refuse(Reason::mpc_denied, {}, false);
        log_decision("rcpt", Reason::mpc_denied, "rcpt", address);
        return;
    }
    envelope_.recipients.push_back(address);
    envelope_.local.push_back(local);
    reply(make_reply(250, "2.1.5", "Recipient OK"));
    log_decision("rcpt", Reason::none, "rcpt", address);
}

void ServerSession::cmd_data()
{
    if (!sequence_allows(true))
        return;
    if (envelope_.recipients.empty()) {
        refuse(Reason::no_recipients);
        return;
    }
    message_.clear();
    message_size_ = 0;
    data_too_big_ = data_line_too_long_ = data_bare_lf_ = false;
    previous_line_crlf_ = true;
    headers_ = HeaderScanner(authserv_id(config_->hostname));
    phase_ = Phase::data;
    reply(make_reply(354, "", "End data with <CR><LF>.<CR><LF>"));
}

void ServerSession::handle_data_line(std::string_view line, bool crlf)
{
    // Only CRLF "." CRLF ends the data: a bare LF never does (SMTP smuggling).
    if (line == "." && crlf && previous_line_crlf_) {
        finish_data();
        return;
    }
    if (!crlf)
        data_bare_lf_ = true;
    previous_line_crlf_ = crlf;
    if (!line.empty() && line.front() == '.')
        line.remove_prefix(1);
    message_size_ += line.size() + 2;
    if (message_size_ > config_->limits.max_message_size)
        data_too_big_ = true;
    if (line.size() > max_text_line)
        data_line_too_long_ = true;
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
    Reason failure = Reason::none;
    if (data_too_big_)
        failure = Reason::message_too_big;
    else if (data_line_too_long_)
        failure = Reason::data_line_too_long;
    else if (data_bare_lf_)
        failure = Reason::bare_linefeed;
    else if (headers_.has_mpc_field())
        failure = Reason::mpc_header_present; // draft s4.4.4: MUST NOT deliver or relay
    if (failure == Reason::none) {
        const auto& carriers = headers_.carrier_values();
        if (carriers.size() > 1) {
            failure = Reason::mpc_duplicate;
        } else if (carriers.size() == 1) {
            const MpcParseResult parsed = parse_mpc(carriers.front());
            if (!parsed.value)
                failure = parsed.reason;
            else if (mpc_from_parameter_ && *parsed.value != envelope_.mpc)
                failure = Reason::mpc_conflict;
            else if (!mpc_from_parameter_)
                envelope_.mpc = *parsed.value;
        } else if (!mpc_from_parameter_) {
            failure = Reason::mpc_missing;
        }
    }
    if (failure == Reason::none && !mpc_from_parameter_ && config_->policy) {
        // Header carrier: the rules of MAIL and RCPT apply now, to the whole message.
        if (!config_->policy->advertise.allows(envelope_.mpc))
            failure = Reason::mpc_denied;
        for (const auto& r : envelope_.recipients)
            if (!config_->policy->recipient_allows(r, envelope_.mpc))
                failure = Reason::mpc_denied;
    }
    if (failure != Reason::none) {
        refuse(failure, {}, false);
        log_decision("message", failure, "size", std::to_string(message_size_));
        reset_transaction();
        return;
    }
    DeliveryRequest d;
    d.envelope = envelope_;
    d.trace = trace_fields();
    d.message = std::move(message_);
    d.session_id = session_id_;
    d.identity = identity_;
    message_.clear();
    delivery_ = std::move(d);
    waiting_delivery_ = true;
}

void ServerSession::delivery_done(Reason failure, std::string_view detail)
{
    waiting_delivery_ = false;
    if (failure == Reason::none) {
        ++messages_accepted_;
        reply(make_reply(250, "2.0.0", "Message accepted, id " + session_id_ + "-" + std::to_string(messages_accepted_)));
        LogLine line("message");
        line.kv("session", session_id_).kv("result", "accepted").kv("reason", "none");
        line.kv("mpc", envelope_.mpc.str()).kv("sender", envelope_.sender);
        line.kv("recipients", join(envelope_.recipients)).kv("size", static_cast<long long>(message_size_));
        if (!detail.empty())
            line.kv("detail", detail); // recipients carried to the queue (settle_delivery)
        if (headers_.forged_results() > 0)   // removed: they claimed our authserv-id
            line.kv("forged_results", static_cast<long long>(headers_.forged_results()));
        if (log_)
            log_(line.str());
    } else {
        refuse(failure, {}, false);
        log_decision("message", failure, "detail", detail);
    }
    reset_transaction();
    maybe_shutdown();
    process();
}

std::string ServerSession::trace_fields() const
{
    TraceInfo info;
    info.by_host = config_->hostname;
    info.ehlo_name = ehlo_name_;
    info.peer_address = peer_;
    info.ptr_name = ptr_name_;
    info.identity = identity_;
    info.mpc = envelope_.mpc;
    info.session_id = session_id_;
    if (envelope_.recipients.size() == 1)
        info.recipient = envelope_.recipients.front();
    if (tls_) {
        info.tls_version = tls_->version;
        info.tls_cipher = tls_->cipher;
    }
    info.when = std::time(nullptr);
    return received_field(info) + authentication_results_field(config_->hostname, info, "pass", Reason::none);
}

void ServerSession::reset_transaction()
{
    in_mail_ = false;
    envelope_ = Envelope{};
    mpc_from_parameter_ = false;
    message_.clear();
    message_size_ = 0;
}

void ServerSession::timeout()
{
    if (close_)
        return;
    reply(reply_for(Reason::timeout));
    log_decision("close", Reason::timeout);
    close_ = true;
    phase_ = Phase::closed;
}

void ServerSession::shutdown()
{
    shutdown_requested_ = true;
    maybe_shutdown();
}

void ServerSession::maybe_shutdown()
{
    if (!shutdown_requested_ || close_ || in_mail_ || phase_ != Phase::command || busy())
        return;
    reply(reply_for(Reason::shutting_down));
    log_decision("close", Reason::shutting_down);
    close_ = true;
    phase_ = Phase::closed;
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

void ServerSession::refuse(Reason reason, std::string_view detail, bool counts_as_error)
{
    reply(reply_for(reason, detail));
    if (!counts_as_error)
        return;
    if (++errors_ >= config_->limits.max_errors) {
        reply(reply_for(Reason::too_many_errors));
        log_decision("close", Reason::too_many_errors);
        close_ = true;
        phase_ = Phase::closed;
    }
}

void ServerSession::log_decision(std::string_view event, Reason reason, std::string_view extra_key,
                                 std::string_view extra_value)
{
    if (!log_)
        return;
    LogLine line(event);
    line.kv("session", session_id_).kv("peer", peer_.str());
    line.kv("result", reason == Reason::none ? "pass" : "fail").kv("reason", reason_name(reason));
    if (!extra_key.empty())
        line.kv(extra_key, extra_value);
    if (identity_)
        line.kv("cert", identity_->names.empty() ? identity_->subject : identity_->names.front());
    else if (tls_ && !tls_->identity.detail.empty())
        line.kv("detail", tls_->identity.detail);
    if (reason == Reason::crl_stale || reason == Reason::crl_missing)
        line.kv("fault", "local").kv("fix", "renew the CRLs in tls.crl");   // every peer is refused until then
    if (reverse_ && (reason == Reason::ptr_mismatch || reason == Reason::ptr_missing || reason == Reason::dns_temporary))
        line.kv("ptr", join(reverse_->names)).kv("dns", reverse_->error);
    log_(line.str());
}

} // namespace amtp
