// The receiving side of one AMTP connection, sans-I/O (nghttp2-style): the host owns
// the socket, TLS, timers, DNS and storage; the session is fed what happened and says
// what to do. The session owns the SMTP dialogue (framing, command sequence, limits on
// what it buffers); every AMTP rule is the rulebook's (rulebook.hpp), which the Exim
// and Haraka adapters call too, so no front-end can disagree with another.
//
// Host loop, in short:
//   start(tls) -> loop { write take_output(); if wants_tls() handshake then
//   tls_established(); if take_lookup() resolve then reverse_dns_done(); if
//   take_delivery() store then delivery_done(); if wants_close() close; read bytes ->
//   receive() }.
#pragma once

#include "amtp/address.hpp"
#include "amtp/log.hpp"
#include "amtp/message_headers.hpp"
#include "amtp/reply.hpp"
#include "amtp/reverse_dns.hpp"
#include "amtp/rulebook.hpp"

#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace amtp {

// A message ready to be stored: the host writes `trace` + (for final delivery)
// mpc_field(envelope.mpc) + `message`, durably, then calls delivery_done().
struct DeliveryRequest {
    Envelope envelope;
    std::string trace;                           // Received + Authentication-Results, CRLF
    std::string message;                         // as received: CRLF lines, unstuffed, carrier removed
    std::string session_id;
    std::optional<Identity> identity;
};

class ServerSession {
public:
    ServerSession(std::shared_ptr<const ServerConfig> config, IpAddress peer, std::string session_id,
                  LogSink log = {});

    // The connection is up. Implicit TLS: `tls` holds the handshake's verified result.
    // STARTTLS mode: nullopt (TLS comes later through tls_established).
    void start(std::optional<TlsInfo> tls, std::time_t now = std::time(nullptr));
    // STARTTLS mode: the handshake the session asked for (wants_tls) finished.
    void tls_established(TlsInfo tls);
    // Bytes from the peer (plaintext, after TLS). A host should read only while
    // wants_input() (backpressure); a host that feeds more than max_pending_input
    // unprocessed bytes anyway gets the session closed (421 4.7.0, input_overflow).
    void receive(std::string_view bytes);
    // The host has written what take_output() gave it: commands held back because
    // max_pending_output octets of replies were waiting are processed now.
    void output_sent();
    void reverse_dns_done(ReverseDnsResult result);
    // Reason::none when the message is durably stored (for every recipient: delivered,
    // or carried to the queue for retry or bounce, see settle_delivery); otherwise
    // storage_full, storage_temporary (4xx) or delivery_refused (5xx). `detail` goes
    // to the log either way.
    void delivery_done(Reason failure, std::string_view detail = {});
    // The host's timer for the current phase (see current_timeout) expired.
    void timeout();
    // The server is stopping: 421 4.3.2 and close, at once when no transaction is
    // open, else as soon as the current one ends (its message is not cut off).
    void shutdown();

    std::string take_output();
    bool wants_tls() const { return wants_tls_; }
    std::optional<IpAddress> take_lookup();
    std::optional<DeliveryRequest> take_delivery();
    bool wants_close() const { return close_; }
    bool busy() const { return waiting_dns_ || waiting_delivery_; }
    // True when the session can act on more bytes now: not closed, not waiting for DNS
    // or storage, no complete command held back, replies under max_pending_output. A
    // peer that sends without reading our replies then fills its own socket buffers,
    // not our memory (as Postfix and OpenSMTPD answer one command at a time).
    bool wants_input() const;

    // Replies waiting for the host to take and write: past this, commands wait.
    static constexpr std::size_t max_pending_output = 4096;
    // Unprocessed input a host may hand over beyond what wants_input() asked for.
    static constexpr std::size_t max_pending_input = 64 * 1024;
    std::chrono::seconds current_timeout() const;

    const std::string& id() const { return facts_.session_id; }
    const std::optional<Identity>& identity() const { return facts_.identity; }
    const std::string& ehlo_name() const { return facts_.ehlo_name; }
    bool authenticated() const { return facts_.authenticated; }
    unsigned messages_accepted() const { return messages_accepted_; }

private:
    enum class Phase { command, data, closed };

    void process();
    void handle_command(std::string_view line);
    void handle_data_line(std::string_view line, bool crlf);
    void keep_line(std::string_view line);
    void finish_data();
    // MAIL, RCPT and DATA: the dialogue's sequence (an open transaction for RCPT and
    // DATA, none for MAIL). Refuses (503 5.5.1) and returns false otherwise.
    bool sequence_allows(std::string_view event, bool needs_transaction);
    void cmd_starttls();
    void maybe_shutdown();
    void reply(const Reply& r);
    // Writes the verdict's reply and log line; counts its error toward max_errors.
    void apply(const Verdict& v);
    void refuse(std::string_view event, Reason reason, std::string_view detail = {}, bool counts_as_error = true);
    void close_with(Reason reason);
    void log(const std::string& line);
    bool tls_pending() const { return config_->starttls && !facts_.tls.has_value(); }

    std::shared_ptr<const ServerConfig> config_;
    Rulebook rules_;
    SessionFacts facts_;
    LogSink log_;

    std::string in_;
    std::string out_;
    Phase phase_ = Phase::command;
    bool discarding_long_line_ = false;
    bool wants_tls_ = false;
    bool close_ = false;
    unsigned errors_ = 0;
    bool shutdown_requested_ = false;

    bool lookup_requested_ = false;
    std::optional<IpAddress> lookup_;
    bool waiting_dns_ = false;

    // The message being received.
    std::string message_;
    MessageFacts message_facts_;
    bool data_too_big_ = false;
    bool previous_line_crlf_ = true;
    HeaderScanner headers_;
    bool waiting_delivery_ = false;
    std::optional<DeliveryRequest> delivery_;
    unsigned messages_accepted_ = 0;
};

} // namespace amtp
