// The sending side of one AMTP transaction set, sans-I/O: the host connects, completes
// TLS and checks the server certificate against the SRV target (TrustStore::
// verify_server), then feeds the server's bytes in and writes out what the session
// produces. The session sends EHLO, applies the server's MPC declarations before MAIL
// (a DENY means QUIT, no retry, bounce: draft s4.4.2), sends MPC= with MAIL, and falls
// back to the AMTP-MPC header carrier (profile B5) when the server does not know the
// parameter, then one recipient per transaction.
#pragma once

#include "amtp/mpc.hpp"
#include "amtp/reply.hpp"

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace amtp {

struct OutgoingMessage {
    std::string sender;                  // reverse path without brackets; "" for a bounce
    std::vector<std::string> recipients; // forward paths without brackets
    MpcValue mpc;
    std::string data;                    // RFC 5322 message, CRLF or LF line endings, no final dot
};

enum class RecipientStatus { pending, delivered, temporary, permanent };

struct RecipientOutcome {
    std::string recipient;
    RecipientStatus status = RecipientStatus::pending;
    Reply reply;                         // the server's reply that decided it (or ours)
};

class ClientSession {
public:
    // `ehlo_name` is our verified host name (it must match our certificate and PTR);
    // a name that could not go on a command line (empty, spaces, control characters)
    // is a programming error: std::invalid_argument. A sender, recipient or MPC value
    // that cannot be sent is decided at once (permanent, bad_sender / bad_recipient /
    // mpc_malformed / mpc_undefined); when nothing is left to send, done() is true
    // from the start.
    ClientSession(std::string ehlo_name, OutgoingMessage message);

    // Bytes from the server (after TLS). Incomplete lines are buffered. Replies are
    // parsed strictly (three-digit code 200-599, one code per multi-line reply, lines
    // up to 64 KiB, no NUL); anything else is a protocol error: undecided recipients
    // become temporary and the session QUITs. Bytes after QUIT are ignored.
    void receive(std::string_view bytes);
    // Bytes to send to the server; empties the buffer.
    std::string take_output();
    // The connection broke: every undecided recipient becomes temporary.
    void connection_lost(std::string_view why);

    bool done() const;                   // QUIT sent (or connection lost): close after writing
    // Every recipient is delivered, temporary or permanent once done() is true.
    const std::vector<RecipientOutcome>& outcomes() const { return outcomes_; }
    // The server's EHLO declared a DENY matching our MPC: no retry, bounce (s4.4.2).
    bool mpc_denied() const { return mpc_denied_; }
    bool used_header_carrier() const { return header_carrier_; }
    const std::optional<DeclarationList>& server_declarations() const { return declarations_; }

private:
    // What each reply we wait for answers, in order (several with PIPELINING).
    enum class Awaiting { greeting, ehlo, mail, rcpt, data, body, rset };
    void on_line(std::string_view line);
    void on_reply(const Reply& reply);
    void on_greeting(const Reply& reply);
    void on_ehlo(const Reply& reply);
    void on_mail(const Reply& reply);
    void on_rcpt(const Reply& reply);
    void on_data(const Reply& reply);
    void on_body(const Reply& reply);
    void on_rset(const Reply& reply);
    void read_ehlo_keywords(const Reply& reply);
    void start_transaction();
    void send_rcpt(std::size_t recipient);
    void after_rcpts();
    void next_transaction(bool need_rset);
    void send_line(std::string_view line);
    void send_command(std::string_view line, Awaiting awaiting);
    void decide(std::size_t recipient, RecipientStatus status, const Reply& reply);
    void decide_pending(RecipientStatus status, const Reply& reply);
    void fail_by_class(const Reply& reply);   // 4xx temporary, 5xx permanent, then QUIT
    void protocol_error(std::string_view detail);
    void quit();
    bool any_pending() const;
    const std::string& wire_body();

    std::string ehlo_name_;
    OutgoingMessage message_;
    std::string in_;
    std::string out_;
    bool closed_ = false;                // QUIT sent or connection lost
    std::deque<Awaiting> awaiting_;      // replies still owed by the server, in order
    int partial_code_ = 0;               // multi-line reply being collected (0: none)
    std::vector<std::string> partial_lines_;
    std::size_t partial_bytes_ = 0;
    // What the server's EHLO reply advertised.
    std::optional<DeclarationList> declarations_;
    bool server_mpc_keyword_ = false;    // an MPC line, usable or not (profile B5)
    std::string server_mpc_lines_;       // as sent, for the mpc_denied text
    bool server_pipelining_ = false;
    bool server_size_ = false;
    std::uint64_t server_size_limit_ = 0; // 0: SIZE without a fixed limit
    bool server_8bitmime_ = false;
    // The transaction in progress.
    bool header_carrier_ = false;
    bool mpc_denied_ = false;
    bool mail_refused_ = false;          // ignore the pipelined RCPT replies that follow
    std::vector<RecipientOutcome> outcomes_;
    std::vector<std::size_t> batch_;     // recipient indexes in the current transaction
    std::size_t rcpt_replies_ = 0;       // RCPT replies received for batch_
    std::vector<std::size_t> accepted_;  // recipients of batch_ the server accepted
    std::string body_;                   // dot-stuffed message for the current carrier
    std::uint64_t body_size_ = 0;        // its RFC 1870 size (CRLF, no stuffing, no dot)
    bool body_ready_ = false;
};

// Transparency (RFC 5321 s4.5.2): CRLF line endings, leading dots doubled, and the
// terminating ".\r\n". `prefix` (header fields) is sent before `data`.
std::string dot_stuff(std::string_view prefix, std::string_view data);

} // namespace amtp
