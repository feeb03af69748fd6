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
    ClientSession(std::string ehlo_name, OutgoingMessage message);

    // Bytes from the server (after TLS). Incomplete lines are buffered.
    void receive(std::string_view bytes);
    // Bytes to send to the server; empties the buffer.
    std::string take_output();
    // The connection broke: every undecided recipient becomes temporary.
    void connection_lost(std::string_view why);

    bool done() const;                   // QUIT sent (or connection lost): close after writing
    const std::vector<RecipientOutcome>& outcomes() const { return outcomes_; }
    // The server's EHLO declared a DENY matching our MPC: no retry, bounce (s4.4.2).
    bool mpc_denied() const { return mpc_denied_; }
    bool used_header_carrier() const { return header_carrier_; }
    const std::optional<DeclarationList>& server_declarations() const { return declarations_; }

private:
    enum class State { greeting, ehlo, mail, rset, rcpt, data, body, quit, closed };
    void on_reply(const Reply& reply);
    void start_transaction();
    void send_line(std::string_view line);
    void decide_pending(RecipientStatus status, const Reply& reply);

    std::string ehlo_name_;
    OutgoingMessage message_;
    std::string in_;
    std::string out_;
    State state_ = State::greeting;
    Reply partial_;                      // multi-line reply being collected
    std::vector<std::string> partial_lines_;
    std::optional<DeclarationList> declarations_;
    bool server_pipelining_ = false;
    std::uint64_t server_size_ = 0;
    bool header_carrier_ = false;
    bool mpc_denied_ = false;
    std::vector<RecipientOutcome> outcomes_;
    std::vector<std::size_t> batch_;     // recipient indexes in the current transaction
    std::size_t rcpt_next_ = 0;          // index into batch_ of the next RCPT reply
    std::size_t accepted_in_batch_ = 0;
};

// Transparency (RFC 5321 s4.5.2): CRLF line endings, leading dots doubled, and the
// terminating ".\r\n". `prefix` (header fields) is sent before `data`.
std::string dot_stuff(std::string_view prefix, std::string_view data);

} // namespace amtp
