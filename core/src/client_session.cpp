#include "amtp/client_session.hpp"

#include "amtp/log.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace amtp {

namespace {

// RFC 5321 allows 512 octets per reply line; real servers send longer texts, so we
// tolerate far more, but a peer must not make us buffer without bound.
constexpr std::size_t max_line = 64 * 1024;
constexpr std::size_t max_reply_bytes = 1024 * 1024;   // a whole multi-line reply
constexpr std::size_t max_reply_lines = 4096;

int reply_class(const Reply& reply)
{
    return reply.code / 100;
}

char upper(char c)
{
    return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

std::string upper(std::string_view s)
{
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) { return upper(c); });
    return out;
}

bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

// A path goes between angle brackets on a command line: a control character would
// end or split the command, a bracket would end the path early.
bool usable_path(std::string_view path)
{
    return std::none_of(path.begin(), path.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c < 0x20 || c == 0x7f || c == '<' || c == '>';
    });
}

bool usable_ehlo_name(std::string_view name)
{
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c > 0x20 && c < 0x7f;
    });
}

bool has_8bit(std::string_view data)
{
    return std::any_of(data.begin(), data.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

// Length of an RFC 3463 status code ("5.7.1") at the start of `text`, or 0. Its class
// must agree with the reply code's, otherwise it is just text.
std::size_t enhanced_length(int code, std::string_view text)
{
    if (text.size() < 5 || text[0] != static_cast<char>('0' + code / 100) || text[1] != '.')
        return 0;
    std::size_t i = 2;
    for (int part = 0; part < 2; ++part) {
        const std::size_t start = i;
        while (i < text.size() && is_digit(text[i]) && i - start < 3)
            ++i;
        if (i == start)
            return 0;
        if (part == 0) {
            if (i >= text.size() || text[i] != '.')
                return 0;
            ++i;
        }
    }
    return (i == text.size() || text[i] == ' ') ? i : 0;
}

// Peer text is kept printable so it can reach a bounce or a log safely; a tab (which
// RFC 5321 textstring allows) reads as a space.
std::string clean_text(std::string_view text)
{
    std::string s(text);
    std::replace(s.begin(), s.end(), '\t', ' ');
    return printable(s);
}

Reply build_reply(int code, const std::vector<std::string>& lines)
{
    Reply r;
    r.code = code;
    std::string_view first = lines.front();
    if (const auto n = enhanced_length(code, first)) {
        r.enhanced = std::string(first.substr(0, n));
        first.remove_prefix(n);
        while (!first.empty() && first.front() == ' ')
            first.remove_prefix(1);
    }
    r.text = clean_text(first);
    for (std::size_t i = 1; i < lines.size(); ++i) {
        std::string_view line = lines[i];
        // RFC 2034 repeats the enhanced code on every line of a reply.
        if (!r.enhanced.empty() && line.substr(0, r.enhanced.size()) == r.enhanced &&
            (line.size() == r.enhanced.size() || line[r.enhanced.size()] == ' ')) {
            line.remove_prefix(r.enhanced.size());
            while (!line.empty() && line.front() == ' ')
                line.remove_prefix(1);
        }
        r.more.push_back(clean_text(line));
    }
    return r;
}

// RFC 5321 s4.5.2 transparency over `prefix` then `data`, read as one stream.
// `stuffed` counts the dots added, which RFC 1870's SIZE leaves out.
std::string stuff(std::string_view prefix, std::string_view data, std::size_t* stuffed)
{
    std::string out;
    out.reserve(prefix.size() + data.size() + data.size() / 32 + 8);
    bool line_start = true;
    bool pending_cr = false;   // a CR is a line ending only when LF follows it
    std::size_t dots = 0;
    auto emit = [&](char c) {
        if (line_start && c == '.') {
            out += '.';
            ++dots;
        }
        out += c;
        line_start = false;
    };
    auto feed = [&](std::string_view part) {
        for (const char c : part) {
            if (pending_cr) {
                pending_cr = false;
                if (c == '\n') {
                    out += "\r\n";
                    line_start = true;
                    continue;
                }
                emit('\r');   // a lone CR stays as it is
            }
            if (c == '\r') {
                pending_cr = true;
            } else if (c == '\n') {
                out += "\r\n";   // a bare LF ends a line too
                line_start = true;
            } else {
                emit(c);
            }
        }
    };
    feed(prefix);
    feed(data);
    if (pending_cr)
        emit('\r');
    // Empty data needs no line: ".\r\n" right after the 354 ends an empty message.
    if (!line_start)
        out += "\r\n";
    out += ".\r\n";
    if (stuffed)
        *stuffed = dots;
    return out;
}

} // namespace

std::string dot_stuff(std::string_view prefix, std::string_view data)
{
    return stuff(prefix, data, nullptr);
}

ClientSession::ClientSession(std::string ehlo_name, OutgoingMessage message)
    : ehlo_name_(std::move(ehlo_name)), message_(std::move(message))
{
    if (!usable_ehlo_name(ehlo_name_))
        throw std::invalid_argument("ClientSession: unusable EHLO name \"" + printable(ehlo_name_) + "\"");

    outcomes_.reserve(message_.recipients.size());
    for (const auto& rcpt : message_.recipients) {
        RecipientOutcome o;
        o.recipient = rcpt;
        if (rcpt.empty() || !usable_path(rcpt)) {
            o.status = RecipientStatus::permanent;
            o.reply = reply_for(Reason::bad_recipient, rcpt);
        }
        outcomes_.push_back(std::move(o));
    }
    if (!usable_path(message_.sender))
        decide_pending(RecipientStatus::permanent, reply_for(Reason::bad_sender, message_.sender));

    // The value goes on the wire as given, so it must be one the draft defines (s4.5):
    // any server would refuse anything else, and a bad one could break the command.
    auto parsed = parse_mpc(message_.mpc.str());
    if (parsed.value)
        message_.mpc = *parsed.value;
    else
        decide_pending(RecipientStatus::permanent,
                       reply_for(parsed.reason == Reason::none ? Reason::mpc_malformed : parsed.reason,
                                 message_.mpc.str()));

    if (any_pending())
        awaiting_.push_back(Awaiting::greeting);
    else
        closed_ = true;   // nothing to send: the host may close at once
}

void ClientSession::receive(std::string_view bytes)
{
    if (closed_)
        return;   // after QUIT (its 221 included) nothing the server says matters
    in_.append(bytes.data(), bytes.size());
    std::size_t pos = 0;
    while (!closed_) {
        const auto lf = in_.find('\n', pos);
        if (lf == std::string::npos)
            break;
        std::string_view line(in_.data() + pos, lf - pos);
        pos = lf + 1;
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);   // CRLF, or a bare LF tolerated
        on_line(line);
    }
    if (closed_) {
        in_.clear();
        return;
    }
    in_.erase(0, pos);
    if (in_.size() > max_line + 1)   // +1: the CR of a CRLF still to come
        protocol_error("reply line longer than 65536 octets");
}

std::string ClientSession::take_output()
{
    std::string out;
    out.swap(out_);
    return out;
}

void ClientSession::connection_lost(std::string_view why)
{
    decide_pending(RecipientStatus::temporary, reply_for(Reason::connection_failed, why));
    closed_ = true;
    awaiting_.clear();
    in_.clear();
    out_.clear();   // nowhere to write it
}

bool ClientSession::done() const
{
    return closed_;
}

void ClientSession::on_line(std::string_view line)
{
    if (line.size() > max_line)
        return protocol_error("reply line longer than 65536 octets");
    if (line.find('\0') != std::string_view::npos)
        return protocol_error("NUL byte in reply");
    // reply-line = 3DIGIT [ ("-" / SP) textstring ]; SMTP codes are 2xx to 5xx.
    const bool code_ok = line.size() >= 3 && line[0] >= '2' && line[0] <= '5' && is_digit(line[1]) &&
                         is_digit(line[2]);
    const char sep = line.size() > 3 ? line[3] : ' ';
    if (!code_ok || (sep != ' ' && sep != '-'))
        return protocol_error("malformed reply line \"" + std::string(line.substr(0, 40)) + "\"");
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (partial_code_ != 0 && code != partial_code_)
        return protocol_error("multi-line reply mixes codes " + std::to_string(partial_code_) + " and " +
                              std::to_string(code));
    partial_code_ = code;
    partial_lines_.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
    partial_bytes_ += line.size();
    if (partial_bytes_ > max_reply_bytes || partial_lines_.size() > max_reply_lines)
        return protocol_error("multi-line reply too long");
    if (sep == '-')
        return;
    const Reply reply = build_reply(code, partial_lines_);
    partial_code_ = 0;
    partial_lines_.clear();
    partial_bytes_ = 0;
    on_reply(reply);
}

void ClientSession::on_reply(const Reply& reply)
{
    if (awaiting_.empty())
        return protocol_error("reply " + std::to_string(reply.code) + " to no command");
    const Awaiting what = awaiting_.front();
    awaiting_.pop_front();
    // 421: the server is closing the channel, whatever command this answers
    // (RFC 5321 s3.8); nothing more will be accepted in this session.
    if (reply.code == 421)
        return fail_by_class(reply);
    switch (what) {
    case Awaiting::greeting: return on_greeting(reply);
    case Awaiting::ehlo: return on_ehlo(reply);
    case Awaiting::mail: return on_mail(reply);
    case Awaiting::rcpt: return on_rcpt(reply);
    case Awaiting::data: return on_data(reply);
    case Awaiting::body: return on_body(reply);
    case Awaiting::rset: return on_rset(reply);
    }
}

void ClientSession::on_greeting(const Reply& reply)
{
    if (reply.code == 220)
        return send_command("EHLO " + ehlo_name_, Awaiting::ehlo);
    if (reply_class(reply) >= 4)
        return fail_by_class(reply);
    protocol_error("greeting " + std::to_string(reply.code));
}

void ClientSession::on_ehlo(const Reply& reply)
{
    // 4xx/5xx include AMTP's 504 authentication failure (draft s4.4.2): it is about
    // us, not the recipients, and its class says whether to retry.
    if (reply_class(reply) >= 4)
        return fail_by_class(reply);
    if (reply.code != 250)
        return protocol_error("EHLO reply " + std::to_string(reply.code));
    read_ehlo_keywords(reply);

    // Draft s4.4.2: a declared DENY for our MPC means QUIT, no MAIL, no retry.
    if (declarations_ && !declarations_->allows(message_.mpc)) {
        mpc_denied_ = true;
        // The bounce names the server's rule; a peer cannot make that text huge.
        std::string declared = server_mpc_lines_.substr(0, 200);
        if (declared.size() < server_mpc_lines_.size())
            declared += "...";
        decide_pending(RecipientStatus::permanent,
                       reply_for(Reason::mpc_denied,
                                 "server declares \"" + declared + "\"; message is " + message_.mpc.str()));
        return quit();
    }
    start_transaction();
}

void ClientSession::read_ehlo_keywords(const Reply& reply)
{
    std::vector<Declaration> items;
    bool usable = true;
    // The first line is the server's name; keywords follow, one a line.
    for (const auto& line : reply.more) {
        const auto space = line.find(' ');
        const std::string keyword = upper(std::string_view(line).substr(0, space));
        const std::string_view param =
            space == std::string::npos ? std::string_view() : std::string_view(line).substr(space + 1);
        if (keyword == "PIPELINING") {
            server_pipelining_ = true;
        } else if (keyword == "8BITMIME") {
            server_8bitmime_ = true;
        } else if (keyword == "SIZE") {
            // RFC 1870: no number (or 0) means no fixed limit, SIZE= still understood.
            server_size_ = true;
            std::uint64_t n = 0;
            const auto [end, ec] = std::from_chars(param.data(), param.data() + param.size(), n);
            server_size_limit_ = (ec == std::errc() && end == param.data() + param.size()) ? n : 0;
        } else if (keyword == "MPC" || keyword.rfind("MPC-", 0) == 0) {
            // Several lines read as one list in order; one bad line spoils them all,
            // since a partial list could turn a DENY into an ALLOW.
            server_mpc_keyword_ = true;
            server_mpc_lines_ += (server_mpc_lines_.empty() ? "" : "; ") + line;
            if (auto list = DeclarationList::parse_ehlo_line(line))
                items.insert(items.end(), list->items().begin(), list->items().end());
            else
                usable = false;
        }
    }
    if (server_mpc_keyword_ && usable && !items.empty())
        declarations_ = DeclarationList(std::move(items));
}

void ClientSession::start_transaction()
{
    batch_.clear();
    accepted_.clear();
    rcpt_replies_ = 0;
    mail_refused_ = false;
    // The header carrier takes one recipient per transaction (profile B5), so that
    // a verdict given after DATA belongs to exactly one recipient.
    for (std::size_t i = 0; i < outcomes_.size(); ++i) {
        if (outcomes_[i].status != RecipientStatus::pending)
            continue;
        batch_.push_back(i);
        if (header_carrier_)
            break;
    }
    if (batch_.empty())
        return quit();

    wire_body();   // sets body_size_ for this carrier
    if (server_size_ && server_size_limit_ != 0 && body_size_ > server_size_limit_) {
        decide_pending(RecipientStatus::permanent,
                       reply_for(Reason::message_too_big, "message " + std::to_string(body_size_) +
                                                              " octets, server limit " +
                                                              std::to_string(server_size_limit_)));
        return quit();
    }

    std::string mail = "MAIL FROM:<" + message_.sender + ">";
    if (!header_carrier_)
        mail += " MPC=" + message_.mpc.str();   // draft s4.4.3: exactly one, with MAIL
    if (server_size_)
        mail += " SIZE=" + std::to_string(body_size_);
    if (server_8bitmime_ && has_8bit(message_.data))
        mail += " BODY=8BITMIME";
    send_command(mail, Awaiting::mail);
    // RFC 2920: MAIL and the RCPTs go in one write; DATA waits for their replies,
    // so we never send a message nobody accepted.
    if (server_pipelining_)
        for (const auto i : batch_)
            send_rcpt(i);
}

void ClientSession::send_rcpt(std::size_t recipient)
{
    send_command("RCPT TO:<" + outcomes_[recipient].recipient + ">", Awaiting::rcpt);
}

void ClientSession::on_mail(const Reply& reply)
{
    if (reply_class(reply) == 2) {
        if (!server_pipelining_)
            send_rcpt(batch_.front());
        return;
    }
    // Profile B5: a server that never spoke of MPC and refuses the parameter does not
    // know it; carry the value in the AMTP-MPC header instead. A server that declared
    // MPC and answers 501/555 means it: that is a refusal.
    if ((reply.code == 501 || reply.code == 555) && !server_mpc_keyword_ && !header_carrier_) {
        header_carrier_ = true;
        body_ready_ = false;
        mail_refused_ = true;
        return send_command("RSET", Awaiting::rset);
    }
    // MAIL concerns the sender and the MPC, not a recipient: its verdict is every
    // remaining recipient's, also those waiting for their own header-carrier turn.
    if (reply_class(reply) >= 4)
        return fail_by_class(reply);
    protocol_error("MAIL reply " + std::to_string(reply.code));
}

void ClientSession::on_rcpt(const Reply& reply)
{
    if (mail_refused_)
        return;   // answers to RCPTs pipelined behind a refused MAIL
    if (rcpt_replies_ >= batch_.size())
        return protocol_error("RCPT reply to no RCPT");
    const std::size_t recipient = batch_[rcpt_replies_++];
    switch (reply_class(reply)) {
    case 2: accepted_.push_back(recipient); break;
    case 4: decide(recipient, RecipientStatus::temporary, reply); break;
    case 5: decide(recipient, RecipientStatus::permanent, reply); break;
    default: return protocol_error("RCPT reply " + std::to_string(reply.code));
    }
    if (rcpt_replies_ < batch_.size()) {
        if (!server_pipelining_)
            send_rcpt(batch_[rcpt_replies_]);
        return;
    }
    after_rcpts();
}

void ClientSession::after_rcpts()
{
    if (!accepted_.empty())
        return send_command("DATA", Awaiting::data);
    next_transaction(true);   // MAIL was accepted: the open transaction needs RSET
}

void ClientSession::next_transaction(bool need_rset)
{
    if (!any_pending())
        return quit();
    if (need_rset)
        return send_command("RSET", Awaiting::rset);
    start_transaction();
}

void ClientSession::on_data(const Reply& reply)
{
    if (reply.code == 354) {
        out_ += wire_body();
        awaiting_.push_back(Awaiting::body);
        return;
    }
    const int cls = reply_class(reply);
    if (cls != 4 && cls != 5)
        return protocol_error("DATA reply " + std::to_string(reply.code));
    for (const auto i : accepted_)
        decide(i, cls == 4 ? RecipientStatus::temporary : RecipientStatus::permanent, reply);
    next_transaction(true);
}

void ClientSession::on_body(const Reply& reply)
{
    RecipientStatus status;
    switch (reply_class(reply)) {
    case 2: status = RecipientStatus::delivered; break;
    case 4: status = RecipientStatus::temporary; break;
    case 5: status = RecipientStatus::permanent; break;
    default: return protocol_error("end of data reply " + std::to_string(reply.code));
    }
    for (const auto i : accepted_)
        decide(i, status, reply);
    next_transaction(false);   // the final reply ends the transaction (RFC 5321 s4.1.1.4)
}

void ClientSession::on_rset(const Reply& reply)
{
    if (reply_class(reply) == 2)
        return start_transaction();
    // A refused RSET says nothing about the recipients: keep the message for later.
    if (reply_class(reply) == 4)
        return fail_by_class(reply);
    protocol_error("RSET reply " + std::to_string(reply.code));
}

void ClientSession::send_line(std::string_view line)
{
    out_.append(line.data(), line.size());
    out_ += "\r\n";
}

void ClientSession::send_command(std::string_view line, Awaiting awaiting)
{
    send_line(line);
    awaiting_.push_back(awaiting);
}

void ClientSession::decide(std::size_t recipient, RecipientStatus status, const Reply& reply)
{
    auto& o = outcomes_[recipient];
    if (o.status != RecipientStatus::pending)
        return;   // a verdict is final
    o.status = status;
    o.reply = reply;
}

void ClientSession::decide_pending(RecipientStatus status, const Reply& reply)
{
    for (std::size_t i = 0; i < outcomes_.size(); ++i)
        decide(i, status, reply);
}

void ClientSession::fail_by_class(const Reply& reply)
{
    const int cls = reply_class(reply);
    if (cls == 4)
        decide_pending(RecipientStatus::temporary, reply);
    else if (cls == 5)
        decide_pending(RecipientStatus::permanent, reply);
    else
        return protocol_error("unexpected reply " + std::to_string(reply.code));
    quit();
}

void ClientSession::protocol_error(std::string_view detail)
{
    decide_pending(RecipientStatus::temporary, reply_for(Reason::protocol_error, detail));
    quit();
}

void ClientSession::quit()
{
    if (closed_)
        return;
    // Every path decides before it quits; should one not, a temporary outcome keeps
    // the message rather than losing or bouncing it.
    decide_pending(RecipientStatus::temporary,
                   reply_for(Reason::protocol_error, "session ended before this recipient was decided"));
    send_line("QUIT");
    closed_ = true;
    awaiting_.clear();
}

bool ClientSession::any_pending() const
{
    return std::any_of(outcomes_.begin(), outcomes_.end(),
                       [](const RecipientOutcome& o) { return o.status == RecipientStatus::pending; });
}

const std::string& ClientSession::wire_body()
{
    if (!body_ready_) {
        // Profile B5: the header carrier puts the value at the top of the message.
        const std::string prefix = header_carrier_ ? "AMTP-MPC: " + message_.mpc.str() + "\r\n" : std::string();
        std::size_t stuffed = 0;
        body_ = stuff(prefix, message_.data, &stuffed);
        body_size_ = body_.size() - 3 - stuffed;   // RFC 1870: no final dot, no added dots
        body_ready_ = true;
    }
    return body_;
}

} // namespace amtp
