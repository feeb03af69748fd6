#include "gate/pipeline.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

namespace amtp::opensmtpd {

namespace {

std::string verb_of(std::string_view line)
{
    std::string v;
    for (char c : line) {
        if (c == ' ' || c == '\r' || c == '\n')
            break;
        v += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return v;
}

bool is_end_of_data(std::string_view line)
{
    return line == ".\r\n" || line == ".\n";
}

} // namespace

void Pipeline::from_client(std::string_view bytes)
{
    client_in_.append(bytes.data(), bytes.size());
    pump();
}

void Pipeline::from_server(std::string_view bytes)
{
    server_in_.append(bytes.data(), bytes.size());
    for (;;) {
        const auto nl = server_in_.find('\n');
        if (nl == std::string::npos)
            break;
        std::string line = server_in_.substr(0, nl + 1);
        server_in_.erase(0, nl + 1);
        server_line(std::move(line));
    }
    // smtpd's replies are short; anything this long without a line end is passed on.
    if (server_in_.size() > data_chunk)
        to_client_ += std::exchange(server_in_, std::string{});
    pump();
}

void Pipeline::server_line(std::string line)
{
    const bool has_code = line.size() >= 3 && std::all_of(line.begin(), line.begin() + 3, [](char c) {
                              return c >= '0' && c <= '9';
                          });
    const bool final_line = has_code && (line.size() < 4 || line[3] != '-');
    if (awaiting_reply_ && swallow_reply_) {
        // The reply to the gate's own line: the client never sent it.
        if (line.rfind("421", 0) == 0)
            to_client_ += line;
        if (final_line) {
            swallow_reply_ = false;
            awaiting_reply_ = false;
        }
        return;
    }
    if (awaiting_reply_ && verb_ == "EHLO" && first_reply_line_ && line.rfind("250", 0) == 0) {
        // The keyword goes right after the greeting line of a positive EHLO reply.
        std::string added;
        for (const auto& keyword : ehlo_keywords_)
            added += "250-" + keyword + "\r\n";
        if (final_line) {
            // The text after "250 ", or the line end itself after a bare "250".
            const std::string text = line.size() > 3 && line[3] == ' ' ? line.substr(4) : line.substr(3);
            to_client_ += "250-" + text + added + "250 PIPELINING\r\n";
        } else {
            to_client_ += line + added + "250-PIPELINING\r\n";
        }
    } else if (awaiting_reply_ && verb_ == "MAIL" && final_line && line.rfind("250 2.0.0 ", 0) == 0) {
        // smtpd acknowledges MAIL with 2.0.0; RFC 3463's address status 2.1.0 is what
        // amtpd (and clients' logs) use for the sender: the one code the gate changes.
        to_client_ += "250 2.1.0 " + line.substr(10);
    } else {
        to_client_ += line;
    }
    first_reply_line_ = false;
    if (!final_line || !awaiting_reply_)
        return; // a continuation, or something unsolicited (421 on timeout): passed on
    const bool positive = line.rfind("250", 0) == 0;
    if (verb_ == "MAIL" || verb_ == "RSET" || verb_ == "EHLO")
        accepted_recipients_ = 0;
    if (verb_ == "RCPT" && positive)
        ++accepted_recipients_;
    if (verb_ == "." && positive && hold_acks_ && to_client_.size() >= line.size()) {
        // Everything of this reply is its last line; keep it until delivery.
        to_client_.resize(to_client_.size() - line.size());
        std::string id = line.size() > 10 ? line.substr(10) : std::string();
        id = id.substr(0, id.find(' '));
        held_ = HeldAck{id, accepted_recipients_};
        held_line_ = line;
        accepted_recipients_ = 0;
        return; // awaiting_reply_ stays set: nothing more goes to smtpd meanwhile
    }
    if (verb_ == ".")
        accepted_recipients_ = 0;
    awaiting_reply_ = false;
    if (verb_ == "DATA" && line.rfind("354", 0) == 0) {
        mode_ = Mode::data;
        data_line_start_ = true;
    }
}

void Pipeline::release_ack()
{
    if (!held_)
        return;
    to_client_ += held_line_;
    held_.reset();
    held_line_.clear();
    awaiting_reply_ = false;
    pump();
}

void Pipeline::pump()
{
    while (!awaiting_reply_ && !overflow_) {
        if (!first_.empty()) {
            to_server_ += std::exchange(first_, std::string{});
            verb_.clear();
            swallow_reply_ = true;
            awaiting_reply_ = true;
            first_reply_line_ = true;
            continue;
        }
        if (mode_ == Mode::command) {
            const auto nl = client_in_.find('\n');
            if (nl == std::string::npos) {
                if (client_in_.size() > max_command_line)
                    overflow_ = true;
                return;
            }
            if (nl + 1 > max_command_line + 2) {
                overflow_ = true;
                return;
            }
            std::string line = client_in_.substr(0, nl + 1);
            client_in_.erase(0, nl + 1);
            verb_ = verb_of(line);
            to_server_ += line;
            awaiting_reply_ = true;
            first_reply_line_ = true;
            continue;
        }
        // DATA: whole lines while they are there; the end mark ends the mode.
        const auto nl = client_in_.find('\n');
        if (nl == std::string::npos) {
            if (client_in_.size() > data_chunk) {
                to_server_ += std::exchange(client_in_, std::string{});
                data_line_start_ = false;
            }
            return;
        }
        std::string line = client_in_.substr(0, nl + 1);
        client_in_.erase(0, nl + 1);
        const bool end = data_line_start_ && is_end_of_data(line);
        data_line_start_ = true;
        to_server_ += line;
        if (end) {
            mode_ = Mode::command;
            verb_ = ".";
            awaiting_reply_ = true;
            first_reply_line_ = true;
        }
    }
}

} // namespace amtp::opensmtpd
