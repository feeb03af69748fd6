// The ACL decisions of the Exim adapter: each one a thin sequence of core calls, so
// that Exim's replies and log reasons equal amtpd's (core/src/server_session.cpp).
#include "exim_module.hpp"

#include "amtp/log.hpp"
#include "amtp/message_headers.hpp"
#include "amtp/names.hpp"
#include "amtp/smtp_syntax.hpp"
#include "amtp/trace_headers.hpp"


namespace amtp::exim {

namespace {

std::string join(const std::vector<std::string>& items)
{
    std::string out;
    for (const auto& i : items)
        out += (out.empty() ? "" : ",") + i;
    return out;
}

// One log line per decision, in amtpd's shape (event, session, peer, result, reason).
LogLine decision_line(std::string_view event, const Connection& c, Reason reason)
{
    LogLine line(event);
    line.kv("session", c.id).kv("peer", c.peer.str());
    line.kv("result", reason == Reason::none ? "pass" : "fail").kv("reason", reason_name(reason));
    if (c.identity)
        line.kv("cert", c.identity->names.empty() ? c.identity->subject : c.identity->names.front());
    return line;
}

Decision decided(Reply reply, const LogLine& line)
{
    return Decision{std::move(reply), line.str()};
}

// Exim's ACL gives a reply its own text; the core's texts are single-line already.
Reply positive(int code, const char* enhanced, const char* text)
{
    return make_reply(code, enhanced, text);
}

// Exim's headers use LF line ends; the core's fields end in CRLF (folded lines too).
std::string lf_lines(std::string_view crlf)
{
    std::string out;
    out.reserve(crlf.size());
    for (std::size_t i = 0; i < crlf.size(); ++i)
        if (!(crlf[i] == '\r' && i + 1 < crlf.size() && crlf[i + 1] == '\n'))
            out += crlf[i];
    return out;
}

} // namespace

std::string acl_text(const Reply& reply)
{
    std::string out = std::to_string(reply.code);
    if (!reply.enhanced.empty())
        out += " " + reply.enhanced;
    return out + " " + reply.text;
}

void record_certificate(Connection& c, unsigned depth, std::string der)
{
    // GnuTLS reports the chain from the top down; a renewed handshake starts again.
    if (depth >= 16)
        return;
    if (c.chain.size() <= depth)
        c.chain.resize(depth + 1);
    c.chain[depth] = std::move(der);
}

Decision decide_ehlo(const SiteConfig& site, Connection& c, const EhloInput& in, const PtrLookup& lookup)
{
    c.authenticated = false;
    c.ehlo_name.clear();
    c.peer = in.peer;
    c.listener = site.listener(in.local, in.local_port);
    const Command cmd = split_command(in.command);
    if (cmd.verb == "HELO") {
        LogLine line = decision_line("helo", c, Reason::helo_refused);
        return decided(reply_for(Reason::helo_refused), line);
    }
    if (!in.tls_active) {
        // STARTTLS mode (profile B1): the plaintext EHLO is not checked, the post-TLS one is.
        LogLine line = decision_line("ehlo", c, Reason::none);
        line.kv("tls", "pending");
        return decided(positive(250, "", site.settings.hostname.c_str()), line);
    }
    const auto name = normalize_host_name(cmd.argument);
    if (!name || !is_fully_qualified(*name)) {
        LogLine line = decision_line("ehlo", c, Reason::ehlo_syntax);
        line.kv("ehlo", cmd.argument);
        return decided(reply_for(Reason::ehlo_syntax), line);
    }

    // The chain GnuTLS received (tls:cert events) when its leaf is the certificate
    // Exim reports; otherwise the leaf alone (its intermediates must then be trusted).
    std::vector<std::string> chain;
    if (!in.leaf_der.empty()) {
        if (!c.chain.empty() && c.chain.front() == in.leaf_der) {
            for (const auto& der : c.chain)
                if (!der.empty())
                    chain.push_back(der);
        } else {
            chain.push_back(in.leaf_der);
        }
    }
    const IdentityResult id = site.trust->verify_client_der(chain, c.listener, in.peer, in.now);
    c.identity = id.identity;
    if (!id.ok()) {
        LogLine line = decision_line("ehlo", c, id.reason);
        line.kv("ehlo", *name).kv("chain", static_cast<long long>(chain.size()));
        if (!id.detail.empty())
            line.kv("detail", id.detail);
        return decided(reply_for(id.reason), line);
    }
    if (!client_name_matches(id.identity->names, *name)) {
        LogLine line = decision_line("ehlo", c, Reason::ehlo_not_in_cert);
        line.kv("ehlo", *name);
        return decided(reply_for(Reason::ehlo_not_in_cert), line);
    }
    if (c.listener == ListenerKind::public_network) {
        if (!c.reverse)
            c.reverse = lookup(in.peer);
        const Reason r = check_ptr(*c.reverse, *name);
        if (r != Reason::none) {
            LogLine line = decision_line("ehlo", c, r);
            line.kv("ehlo", *name).kv("ptr", join(c.reverse->names)).kv("dns", c.reverse->error);
            if (c.reverse->status == DnsStatus::temporary)
                c.reverse.reset(); // a later EHLO asks again rather than reusing a failure
            return decided(reply_for(r), line);
        }
        c.ptr_name = *name;
    }
    c.authenticated = true;
    c.ehlo_name = *name;
    LogLine line = decision_line("ehlo", c, Reason::none);
    line.kv("ehlo", *name).kv("listener", c.listener == ListenerKind::public_network ? "public" : "private");
    return decided(positive(250, "", site.settings.hostname.c_str()), line);
}

Decision decide_mail(const SiteConfig&, Connection& c, bool tls_active, std::string_view sender)
{
    c.mpc.reset();
    Reason r = Reason::none;
    if (!tls_active)
        r = Reason::tls_required;
    else if (!c.authenticated)
        r = Reason::ehlo_first;
    LogLine line = decision_line("mail", c, r);
    line.kv("sender", sender).kv("mpc", "header");
    return decided(r == Reason::none ? positive(250, "2.1.0", "Sender OK") : reply_for(r), line);
}

Decision decide_rcpt(const SiteConfig& site, Connection& c, std::string_view recipient)
{
    Reason r = Reason::none;
    const auto box = parse_mailbox(recipient);
    if (!c.authenticated)
        r = Reason::ehlo_first;
    else if (!box)
        r = Reason::bad_recipient;
    else if (c.listener == ListenerKind::public_network && !site.is_local_domain(box->domain))
        r = Reason::relay_denied; // draft s5.1: public in, never public out
    RecipientVerdict known;
    if (r == Reason::none && site.recipients && site.is_local_domain(box->domain)) {
        known = site.recipients->check(box->str());
        r = known.reason; // unknown_recipient (550 5.1.1) or storage_temporary (451 4.3.0)
    }
    LogLine line = decision_line("rcpt", c, r);
    line.kv("rcpt", recipient);
    if (!known.detail.empty())
        line.kv("detail", known.detail);
    return decided(r == Reason::none ? positive(250, "2.1.5", "Recipient OK") : reply_for(r), line);
}

Decision decide_data(const SiteConfig& site, Connection& c, const DataInput& in)
{
    c.mpc.reset();
    c.received.clear();
    c.authentication_results.clear();
    c.mpc_field.clear();
    c.remove_fields.clear();
    HeaderScanner headers(authserv_id(site.settings.hostname));
    std::size_t start = 0;
    while (start < in.headers.size() && headers.in_header()) {
        std::size_t end = in.headers.find('\n', start);
        if (end == std::string::npos)
            end = in.headers.size();
        std::string_view l(in.headers.data() + start, end - start);
        if (!l.empty() && l.back() == '\r')
            l.remove_suffix(1);
        headers.line(l);
        start = end + 1;
    }
    headers.finish();

    Reason r = Reason::none;
    std::optional<MpcValue> mpc;
    if (!c.authenticated) {
        r = Reason::ehlo_first;
    } else if (headers.has_mpc_field()) {
        r = Reason::mpc_header_present; // draft s4.4.4: MUST NOT deliver or relay
    } else if (headers.carrier_values().size() > 1) {
        r = Reason::mpc_duplicate;
    } else if (headers.carrier_values().empty()) {
        r = Reason::mpc_missing;
    } else {
        const MpcParseResult parsed = parse_mpc(headers.carrier_values().front());
        if (!parsed.value)
            r = parsed.reason;
        else
            mpc = parsed.value;
    }
    if (r == Reason::none && site.policy) {
        // The header carrier (profile B5): the rules of MAIL and RCPT apply now.
        if (!site.policy->advertise.allows(*mpc))
            r = Reason::mpc_denied;
        for (const auto& rcpt : in.recipients)
            if (!site.policy->recipient_allows(rcpt, *mpc))
                r = Reason::mpc_denied;
    }
    LogLine line = decision_line("message", c, r);
    line.kv("sender", in.sender).kv("rcpt", join(in.recipients));
    if (headers.forged_results() > 0)
        line.kv("forged_results", static_cast<long long>(headers.forged_results()));
    if (mpc)
        line.kv("mpc", mpc->str());
    else if (!headers.carrier_values().empty())
        line.kv("mpc", headers.carrier_values().front());
    if (r != Reason::none)
        return decided(reply_for(r), line);

    c.mpc = mpc;
    TraceInfo info;
    info.by_host = site.settings.hostname;
    info.ehlo_name = c.ehlo_name;
    info.peer_address = c.peer;
    info.ptr_name = c.ptr_name;
    info.identity = c.identity;
    info.mpc = mpc;
    info.session_id = c.id;
    if (in.recipients.size() == 1)
        info.recipient = in.recipients.front();
    info.tls_version = in.tls_version;
    info.tls_cipher = in.tls_cipher;
    info.when = in.now;
    // Every recipient here is local (public listeners refuse others) or, on a private
    // listener, is delivered by Exim's own routers; the MPC field goes with the message
    // either way, as a protocol other than AMTP carries it on (draft s4.4.4).
    c.received = lf_lines(received_field(info));
    c.authentication_results =
        lf_lines(authentication_results_field(site.settings.hostname, info, "pass", Reason::none));
    c.mpc_field = lf_lines(mpc_field(*mpc));
    // Exim removes header fields by name only: when the core found a field claiming our
    // authserv-id, every Authentication-Results field goes (RFC 8601 s5 allows a border
    // MTA to remove them all); our own is added after the removal.
    c.remove_fields = headers.forged_results() > 0 ? "AMTP-MPC : Authentication-Results" : "AMTP-MPC";
    return decided(positive(250, "2.0.0", "Message accepted"), line);
}

std::vector<std::string> split_recipients(std::string_view list)
{
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= list.size()) {
        std::size_t end = list.find(',', start);
        if (end == std::string_view::npos)
            end = list.size();
        std::string_view item = list.substr(start, end - start);
        while (!item.empty() && item.front() == ' ')
            item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ')
            item.remove_suffix(1);
        if (!item.empty())
            out.emplace_back(item);
        start = end + 1;
    }
    return out;
}

std::optional<std::string> safe_local_part(std::string_view l)
{
    if (l.empty() || l.size() > 255 || l.front() == '.' || l.find("..") != std::string_view::npos)
        return std::nullopt;
    for (const char ch : l) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '/' || c < 0x20 || c == 0x7f)
            return std::nullopt;
    }
    return std::string(l);
}

} // namespace amtp::exim
