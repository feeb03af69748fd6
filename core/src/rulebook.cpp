#include "amtp/rulebook.hpp"

#include "amtp/message_headers.hpp"
#include "amtp/names.hpp"
#include "amtp/smtp_syntax.hpp"
#include "amtp/trace_headers.hpp"

#include <algorithm>
#include <charconv>

namespace amtp {

namespace {

std::string join(const std::vector<std::string>& v)
{
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : ",") + s;
    return out;
}

const char* listener_name(ListenerKind k)
{
    return k == ListenerKind::public_network ? "public" : "private";
}

} // namespace

bool ServerConfig::in_local_domains(const std::vector<std::string>& local_domains, std::string_view domain)
{
    const auto name = normalize_host_name(domain);
    return name && std::find(local_domains.begin(), local_domains.end(), *name) != local_domains.end();
}

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

void MessageFacts::take_header(const HeaderScanner& scanner)
{
    mpc_field = scanner.has_mpc_field();
    carriers = scanner.carrier_values();
    forged_results = scanner.forged_results();
}

void reset_transaction(SessionFacts& f)
{
    f.in_mail = false;
    f.envelope = Envelope{};
    f.mpc_from_parameter = false;
}

Rulebook::Rulebook(std::shared_ptr<const ServerConfig> config) : config_(std::move(config)) {}

SessionFacts Rulebook::open(IpAddress peer, std::string session_id, ListenerKind listener) const
{
    SessionFacts f;
    f.peer = peer;
    f.session_id = std::move(session_id);
    f.listener = listener;
    return f;
}

std::string Rulebook::connect_log(const SessionFacts& f) const
{
    LogLine line("connect");
    line.kv("session", f.session_id).kv("peer", f.peer.str()).kv("listener", listener_name(f.listener));
    if (f.tls) {
        line.kv("tls", f.tls->version).kv("cert", f.tls->identity.ok() ? "verified" : reason_name(f.tls->identity.reason));
        if (f.tls->resumed)
            line.kv("resumed", "yes");
        if (f.identity)
            line.kv("subject", f.identity->subject).kv("sha256", f.identity->sha256);
    }
    return line.str();
}

std::string Rulebook::tls_established(SessionFacts& f, TlsInfo tls) const
{
    f.tls = std::move(tls);
    f.identity.reset();
    if (f.tls->identity.ok())
        f.identity = f.tls->identity.identity;
    f.authenticated = false;
    f.ehlo_name.clear();
    f.ptr_name.clear();
    f.pending_ehlo.clear();
    reset_transaction(f);
    LogLine line("tls");
    line.kv("session", f.session_id).kv("tls", f.tls->version);
    line.kv("cert", f.tls->identity.ok() ? "verified" : reason_name(f.tls->identity.reason));
    if (f.tls->resumed)
        line.kv("resumed", "yes");
    return line.str();
}

LogLine Rulebook::decision_line(const SessionFacts& f, std::string_view event, Reason reason) const
{
    LogLine line(event);
    line.kv("session", f.session_id).kv("peer", f.peer.str());
    line.kv("result", reason == Reason::none ? "pass" : "fail").kv("reason", reason_name(reason));
    return line;
}

Verdict Rulebook::refuse(const SessionFacts& f, std::string_view event, Reason reason, LogFields fields,
                         bool counts_as_error) const
{
    Verdict v;
    v.reason = reason;
    v.reply = reply_for(reason);
    v.counts_as_error = counts_as_error;
    LogLine line = decision_line(f, event, reason);
    for (const auto& [key, value] : fields)
        if (!key.empty())
            line.kv(key, value);
    if (f.identity)
        line.kv("cert", f.identity->names.empty() ? f.identity->subject : f.identity->names.front());
    else if (f.tls && !f.tls->identity.detail.empty())
        line.kv("detail", f.tls->identity.detail);
    if (reason == Reason::crl_stale || reason == Reason::crl_missing)
        line.kv("fault", "local").kv("fix", "renew the CRLs in tls.crl");   // every peer is refused until then
    if (f.reverse && (reason == Reason::ptr_mismatch || reason == Reason::ptr_missing ||
                      reason == Reason::ptr_unconfirmed || reason == Reason::dns_temporary))
        line.kv("ptr", join(f.reverse->names)).kv("dns", f.reverse->error);
    v.log = line.str();
    return v;
}

Verdict Rulebook::pass(const SessionFacts& f, std::string_view event, Reply reply, LogFields fields) const
{
    Verdict v;
    v.reply = std::move(reply);
    LogLine line = decision_line(f, event, Reason::none);
    for (const auto& [key, value] : fields)
        line.kv(key, value);
    if (f.identity)
        line.kv("cert", f.identity->names.empty() ? f.identity->subject : f.identity->names.front());
    v.log = line.str();
    return v;
}

Verdict Rulebook::refusal(const SessionFacts& f, std::string_view event, Reason reason, std::string_view detail,
                          bool counts_as_error) const
{
    Verdict v = refuse(f, event, reason, {{detail.empty() ? "" : "detail", detail}}, counts_as_error);
    v.reply = reply_for(reason, reason == Reason::unknown_parameter ? detail : std::string_view{});
    return v;
}

Verdict Rulebook::unknown_parameter(const SessionFacts& f, std::string_view event, std::string_view keyword) const
{
    Verdict v = refuse(f, event, Reason::unknown_parameter, {{"parameter", keyword}});
    v.reply = reply_for(Reason::unknown_parameter, keyword);
    return v;
}

Verdict Rulebook::helo(SessionFacts& f) const
{
    f.authenticated = false;
    return refuse(f, "helo", Reason::helo_refused);
}

Reply Rulebook::ehlo_reply(const SessionFacts& f) const
{
    Reply r = make_reply(250, "", config_->hostname + " greets " + f.ehlo_name);
    if (config_->policy && !config_->policy->advertise.empty())
        r.more.push_back(config_->policy->advertise.ehlo_line());
    r.more.push_back("PIPELINING");
    r.more.push_back("8BITMIME");
    r.more.push_back("SIZE " + std::to_string(config_->limits.max_message_size));
    r.more.push_back("ENHANCEDSTATUSCODES");
    return r;
}

Verdict Rulebook::ehlo(SessionFacts& f, std::string_view argument) const
{
    reset_transaction(f);
    f.authenticated = false;
    f.ehlo_name.clear();
    f.pending_ehlo.clear();
    if (config_->starttls && !f.tls) {
        // Before TLS (STARTTLS mode) nothing is checked: the post-TLS EHLO is (B1).
        Reply r = make_reply(250, "", config_->hostname);
        r.more = {"STARTTLS", "ENHANCEDSTATUSCODES"};
        return pass(f, "ehlo", std::move(r), {{"tls", "pending"}});
    }
    const auto name = normalize_host_name(argument);
    if (!name || !is_fully_qualified(*name))
        return refuse(f, "ehlo", Reason::ehlo_syntax, {{"ehlo", argument}});
    if (!f.tls || !f.tls->identity.ok()) {
        // A host that reports no identity and no reason has still not verified one.
        const Reason r = !f.tls ? Reason::no_client_cert
                         : f.tls->identity.reason == Reason::none ? Reason::cert_invalid
                                                                  : f.tls->identity.reason;
        return refuse(f, "ehlo", r, {{"ehlo", *name}});
    }
    if (!client_name_matches(f.identity->names, *name))
        return refuse(f, "ehlo", Reason::ehlo_not_in_cert, {{"ehlo", *name}});
    f.pending_ehlo = *name;
    if (f.listener == ListenerKind::private_network) {
        // Private networks skip the PTR rule (profile s7).
        f.authenticated = true;
        f.ehlo_name = *name;
        return pass(f, "ehlo", ehlo_reply(f), {{"ehlo", *name}});
    }
    if (!f.reverse) {
        Verdict v;
        v.needs_ptr = true;
        return v;
    }
    return finish_ehlo(f);
}

Verdict Rulebook::ehlo_ptr(SessionFacts& f, ReverseDnsResult result) const
{
    f.reverse = std::move(result);
    if (f.pending_ehlo.empty() || f.authenticated) {
        Verdict v;   // an answer nobody waits for (asked at connect): kept for the EHLO
        return v;
    }
    return finish_ehlo(f);
}

Verdict Rulebook::finish_ehlo(SessionFacts& f) const
{
    const Reason r = check_ptr(*f.reverse, f.pending_ehlo);
    if (r != Reason::none) {
        Verdict v = refuse(f, "ehlo", r, {{"ehlo", f.pending_ehlo}});
        if (f.reverse->status == DnsStatus::temporary)
            f.reverse.reset();   // a later EHLO asks again rather than reusing a failure
        f.pending_ehlo.clear();
        return v;
    }
    f.authenticated = true;
    f.ehlo_name = f.pending_ehlo;
    f.ptr_name = f.pending_ehlo;
    f.pending_ehlo.clear();
    return pass(f, "ehlo", ehlo_reply(f), {{"ehlo", f.ehlo_name}});
}

Verdict Rulebook::mail(SessionFacts& f, std::string_view argument) const
{
    reset_transaction(f);
    if (config_->starttls && !f.tls)
        return refuse(f, "mail", Reason::tls_required);
    if (!f.authenticated)
        return refuse(f, "mail", Reason::ehlo_first);
    const auto path = parse_path_command(argument, "FROM");
    if (!path)
        return refuse(f, "mail", Reason::syntax_error, {{"command", argument}});
    std::string sender;
    if (!path->address.empty()) {
        const auto box = parse_mailbox(path->address);
        if (!box)
            return refuse(f, "mail", Reason::bad_sender, {{"sender", path->address}});
        sender = box->str();
    }
    // SIZE (and the other parameters) before MPC: a message too big is refused the
    // same way whatever its MPC.
    for (const auto& p : path->parameters) {
        if (p.keyword == "MPC")
            continue;
        if (p.keyword == "SIZE") {
            std::uint64_t size = 0;
            const auto [ptr, ec] = std::from_chars(p.value.data(), p.value.data() + p.value.size(), size);
            if (!p.has_value || p.value.empty() || ec != std::errc() || ptr != p.value.data() + p.value.size())
                return refuse(f, "mail", Reason::syntax_error, {{"size", p.value}});
            if (size > config_->limits.max_message_size)
                return refuse(f, "mail", Reason::message_too_big, {{"size", p.value}}, false);
        } else if (p.keyword == "BODY") {
            if (p.value != "7BIT" && p.value != "8BITMIME")
                return refuse(f, "mail", Reason::syntax_error, {{"body", p.value}});
        } else {
            return unknown_parameter(f, "mail", p.keyword);
        }
    }
    const MpcParameter mpc = mpc_parameter(path->parameters, !config_->accept_header_carrier);
    if (mpc.reason != Reason::none)
        return refuse(f, "mail", mpc.reason, {{"sender", sender}});
    if (mpc.value) {
        if (config_->policy && !config_->policy->advertise.allows(*mpc.value))
            return refuse(f, "mail", Reason::mpc_denied, {{"mpc", mpc.value->str()}}, false);
        f.envelope.mpc = *mpc.value;
        f.mpc_from_parameter = true;
    }
    f.in_mail = true;
    f.envelope.sender = sender;
    Verdict v = pass(f, "mail", make_reply(250, "2.1.0", "Sender OK"), {{"mpc", mpc.value ? mpc.value->str() : "header"}});
    return v;
}

Verdict Rulebook::rcpt(SessionFacts& f, std::string_view argument) const
{
    if (!f.authenticated)
        return refuse(f, "rcpt", Reason::ehlo_first);
    const auto path = parse_path_command(argument, "TO");
    if (!path)
        return refuse(f, "rcpt", Reason::syntax_error, {{"command", argument}});
    if (!path->parameters.empty())
        return unknown_parameter(f, "rcpt", path->parameters.front().keyword);
    const auto box = parse_mailbox(path->address);
    if (!box)
        return refuse(f, "rcpt", Reason::bad_recipient, {{"rcpt", path->address}});
    const std::string address = box->str();
    if (f.envelope.recipients.size() >= config_->limits.max_recipients)
        return refuse(f, "rcpt", Reason::too_many_recipients, {{"rcpt", address}}, false);
    const bool local = config_->is_local_domain(box->domain);
    // A message received over a public connection is never relayed over another
    // public connection (draft s5.1); nor by a host that has no way to relay.
    if (!local && (f.listener == ListenerKind::public_network || !config_->can_relay))
        return refuse(f, "rcpt", Reason::relay_denied, {{"rcpt", address}});
    if (local && config_->recipients) {
        // Before the MPC rules: an unknown mailbox is the same answer for every MPC.
        const RecipientVerdict known = config_->recipients->check(address);
        if (known.reason != Reason::none) {
            return refuse(f, "rcpt", known.reason,
                          {{"rcpt", address}, {known.detail.empty() ? "" : "detail", known.detail}},
                          known.reason == Reason::unknown_recipient);
        }
    }
    // Every recipient, local or relayed, on every listener: the site's rules for it.
    if (f.mpc_from_parameter && config_->policy && !config_->policy->recipient_allows(address, f.envelope.mpc))
        return refuse(f, "rcpt", Reason::mpc_denied, {{"rcpt", address}, {"mpc", f.envelope.mpc.str()}}, false);
    f.envelope.recipients.push_back(address);
    f.envelope.local.push_back(local);
    return pass(f, "rcpt", make_reply(250, "2.1.5", "Recipient OK"), {{"rcpt", address}});
}

Verdict Rulebook::data(SessionFacts& f) const
{
    if (!f.authenticated)
        return refuse(f, "data", Reason::ehlo_first);
    if (f.envelope.recipients.empty())
        return refuse(f, "data", Reason::no_recipients);
    Verdict v;
    v.reply = make_reply(354, "", "End data with <CR><LF>.<CR><LF>");
    return v;
}

Verdict Rulebook::message(SessionFacts& f, const MessageFacts& m) const
{
    Reason failure = Reason::none;
    if (!f.authenticated)
        failure = Reason::ehlo_first;
    else if (m.size > config_->limits.max_message_size)
        failure = Reason::message_too_big;
    else if (m.line_too_long)
        failure = Reason::data_line_too_long;
    else if (m.bare_linefeed)
        failure = Reason::bare_linefeed;
    else if (m.mpc_field)
        failure = Reason::mpc_header_present;   // draft s4.4.4: MUST NOT deliver or relay
    std::optional<MpcValue> carried;
    if (failure == Reason::none) {
        if (m.carriers.size() > 1) {
            failure = Reason::mpc_duplicate;
        } else if (m.carriers.size() == 1) {
            const MpcParseResult parsed = parse_mpc(m.carriers.front());
            if (!parsed.value)
                failure = parsed.reason;
            else if (f.mpc_from_parameter && *parsed.value != f.envelope.mpc)
                failure = Reason::mpc_conflict;
            else
                carried = parsed.value;
        } else if (!f.mpc_from_parameter) {
            failure = Reason::mpc_missing;
        }
    }
    if (failure == Reason::none && !f.mpc_from_parameter && config_->policy) {
        // Header carrier: the rules of MAIL and RCPT apply now, to the whole message.
        if (!config_->policy->advertise.allows(*carried))
            failure = Reason::mpc_denied;
        for (const auto& r : f.envelope.recipients)
            if (!config_->policy->recipient_allows(r, *carried))
                failure = Reason::mpc_denied;
    }
    if (failure != Reason::none) {
        const std::string size = std::to_string(m.size);
        const std::string recipients = join(f.envelope.recipients);
        Verdict v = refuse(f, "message", failure,
                           {{"sender", f.envelope.sender},
                            {"recipients", recipients},
                            {"size", size},
                            {m.carriers.empty() ? "" : "mpc", m.carriers.empty() ? "" : m.carriers.front()}},
                           false);
        reset_transaction(f);
        return v;
    }
    if (!f.mpc_from_parameter)
        f.envelope.mpc = *carried;
    Verdict v;   // the host stores it; accepted() or store_failed() answers
    return v;
}

Rulebook::TraceFields Rulebook::trace(const SessionFacts& f, std::time_t now) const
{
    TraceInfo info;
    info.by_host = config_->hostname;
    info.ehlo_name = f.ehlo_name;
    info.peer_address = f.peer;
    info.ptr_name = f.ptr_name;
    info.identity = f.identity;
    info.mpc = f.envelope.mpc;
    info.session_id = f.session_id;
    if (f.envelope.recipients.size() == 1)
        info.recipient = f.envelope.recipients.front();
    if (f.tls) {
        info.tls_version = f.tls->version;
        info.tls_cipher = f.tls->cipher;
    }
    info.when = now;
    return {received_field(info), authentication_results_field(config_->hostname, info, "pass", Reason::none)};
}

std::string Rulebook::trace_fields(const SessionFacts& f, std::time_t now) const
{
    TraceFields t = trace(f, now);
    return t.received + t.authentication_results;
}

Verdict Rulebook::accepted(SessionFacts& f, const MessageFacts& m, std::string_view message_id,
                           std::string_view detail) const
{
    Verdict v;
    v.reply = make_reply(250, "2.0.0", "Message accepted, id " + std::string(message_id));
    LogLine line("message");
    line.kv("session", f.session_id).kv("result", "accepted").kv("reason", "none");
    line.kv("mpc", f.envelope.mpc.str()).kv("sender", f.envelope.sender);
    line.kv("recipients", join(f.envelope.recipients)).kv("size", static_cast<long long>(m.size));
    if (!detail.empty())
        line.kv("detail", detail);   // recipients carried to the queue (settle_delivery)
    if (m.forged_results > 0)        // removed: they claimed our authserv-id
        line.kv("forged_results", static_cast<long long>(m.forged_results));
    v.log = line.str();
    reset_transaction(f);
    return v;
}

Verdict Rulebook::store_failed(SessionFacts& f, Reason failure, std::string_view detail) const
{
    Verdict v = refuse(f, "message", failure, {{"detail", detail}}, false);
    reset_transaction(f);
    return v;
}

OutgoingMpc outgoing_mpc(const Policy* policy, std::string_view given, std::string_view sender)
{
    OutgoingMpc out;
    const auto first = given.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos) {
        const auto last = given.find_last_not_of(" \t\r\n");
        const MpcParseResult parsed = parse_mpc(given.substr(first, last - first + 1));
        out.value = parsed.value;
        out.reason = parsed.reason;
        return out;
    }
    if (sender.empty())
        out.value = MpcValue{"net", "autoresponse"};   // bounces (draft s6)
    else if (policy)
        out.value = policy->sender_mpc(sender);
    return out;
}

} // namespace amtp
