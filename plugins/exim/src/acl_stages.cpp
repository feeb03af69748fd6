// The ACL hooks of the Exim adapter, translated into the core rulebook's stages, so
// that Exim's replies and log lines are amtpd's (both come from core/src/rulebook.cpp).
#include "exim_module.hpp"

#include "amtp/maildir.hpp"
#include "amtp/message_headers.hpp"
#include "amtp/smtp_syntax.hpp"
#include "amtp/trace_headers.hpp"


namespace amtp::exim {

namespace {

Decision decided(const Verdict& v)
{
    return Decision{v.reply, v.log};
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

Rulebook rules_for(const Site& site, const Connection& c)
{
    return Rulebook(site.config(c.facts.listener));
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

Decision acl_ehlo(const Site& site, Connection& c, const EhloInput& in, const PtrLookup& lookup)
{
    c.facts.peer = in.peer;
    c.facts.listener = site.listener(in.local, in.local_port);
    const Rulebook rules = rules_for(site, c);
    const Command cmd = split_command(in.command);
    if (cmd.verb == "HELO")
        return decided(rules.helo(c.facts));
    if (in.tls_active) {
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
        TlsInfo tls;
        tls.identity = site.trust->verify_client_der(chain, c.facts.listener, in.peer, in.now);
        // Exim gives the protocol version only at DATA ($tls_in_ver); the trace fields
        // take it from there.
        rules.tls_established(c.facts, std::move(tls));
    }
    Verdict v = rules.ehlo(c.facts, cmd.argument);
    if (v.needs_ptr)
        v = rules.ehlo_ptr(c.facts, lookup(in.peer));
    return decided(v);
}

Decision acl_mail(const Site& site, Connection& c, std::string_view command)
{
    c.mpc.reset();
    return decided(rules_for(site, c).mail(c.facts, split_command(command).argument));
}

Decision acl_rcpt(const Site& site, Connection& c, std::string_view command)
{
    return decided(rules_for(site, c).rcpt(c.facts, split_command(command).argument));
}

Decision acl_data(const Site& site, Connection& c, const DataInput& in)
{
    c.mpc.reset();
    c.received.clear();
    c.authentication_results.clear();
    c.mpc_field.clear();
    c.remove_fields.clear();
    const Rulebook rules = rules_for(site, c);
    HeaderScanner headers(authserv_id(site.settings.hostname));
    headers.scan(header_lines(in.headers));
    MessageFacts m;
    m.take_header(headers);
    m.size = in.size;   // Exim has refused a message over message_size_limit itself
    // Exim's list is the one it will deliver to (a recipient its own ACL refused after
    // ours is not on it).
    c.facts.envelope.recipients = in.recipients;
    if (c.facts.tls) {
        c.facts.tls->version = in.tls_version;
        c.facts.tls->cipher = in.tls_cipher;
    }
    const Verdict v = rules.message(c.facts, m);
    if (v.refused())
        return decided(v);

    c.mpc = c.facts.envelope.mpc;
    // Every recipient here is local (public listeners refuse others) or, on a private
    // listener, is delivered by Exim's own routers; the MPC field goes with the message
    // either way, as a protocol other than AMTP carries it on (draft s4.4.4).
    // One field per add_header: :at_start: applies to an add_header's first line only.
    const Rulebook::TraceFields trace = rules.trace(c.facts, in.now);
    c.received = lf_lines(trace.received);
    c.authentication_results = lf_lines(trace.authentication_results);
    c.mpc_field = lf_lines(mpc_field(c.facts.envelope.mpc));
    // Exim removes header fields by name only: when the core found a field claiming our
    // authserv-id, every Authentication-Results field goes (RFC 8601 s5 allows a border
    // MTA to remove them all); our own is added after the removal.
    c.remove_fields = m.forged_results > 0 ? "AMTP-MPC : Authentication-Results" : "AMTP-MPC";
    ++c.messages;
    return decided(rules.accepted(c.facts, m, c.facts.session_id + "-" + std::to_string(c.messages)));
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
    if (!valid_maildir_local_part(l))
        return std::nullopt;
    return std::string(l);
}

} // namespace amtp::exim
