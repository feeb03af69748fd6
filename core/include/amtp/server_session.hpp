// The receiving side of one AMTP connection, sans-I/O (nghttp2-style): the host owns
// the socket, TLS, timers, DNS and storage; the session is fed what happened and says
// what to do. Every rule of the profile that concerns a server is decided here (or in
// the pure functions it calls), so amtpd and the adapters cannot disagree.
//
// Host loop, in short:
//   start(tls) -> loop { write take_output(); if wants_tls() handshake then
//   tls_established(); if take_lookup() resolve then reverse_dns_done(); if
//   take_delivery() store then delivery_done(); if wants_close() close; read bytes ->
//   receive() }.
#pragma once

#include "amtp/address.hpp"
#include "amtp/local_delivery.hpp"
#include "amtp/log.hpp"
#include "amtp/message_headers.hpp"
#include "amtp/mpc.hpp"
#include "amtp/policy.hpp"
#include "amtp/reply.hpp"
#include "amtp/reverse_dns.hpp"
#include "amtp/settings.hpp"
#include "amtp/tls_identity.hpp"

#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace amtp {

// Shared, immutable configuration of one listener.
struct ServerConfig {
    std::string hostname;
    ListenerKind listener = ListenerKind::public_network;
    bool starttls = false;                       // profile B1: STARTTLS mode instead of implicit TLS
    std::vector<std::string> local_domains;      // normalised
    Limits limits;
    std::shared_ptr<const Policy> policy;        // null: no site rules (ALLOW */*)
    // Profile B5, for front-ends whose MTA cannot take MPC= on MAIL: a MAIL without the
    // parameter is accepted and the value must arrive in an AMTP-MPC header field.
    bool accept_header_carrier = false;
    // delivery.recipients for hosts that deliver locally themselves; null: every
    // recipient of a local domain is accepted (the MTA behind checks them).
    std::shared_ptr<const LocalRecipients> recipients;
};

// Builds a ServerConfig for a listener from the shared settings and policy.
ServerConfig make_server_config(const Settings& settings, std::shared_ptr<const Policy> policy,
                                ListenerKind listener);

struct TlsInfo {
    IdentityResult identity;
    std::string version;                         // "TLSv1.3"
    std::string cipher;
};

struct Envelope {
    std::string sender;                          // "" for the null reverse path
    std::vector<std::string> recipients;         // local@domain, domain normalised
    std::vector<bool> local;                     // per recipient: domain is a local domain
    MpcValue mpc;
};

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

    const std::string& id() const { return session_id_; }
    const std::optional<Identity>& identity() const { return identity_; }
    const std::string& ehlo_name() const { return ehlo_name_; }
    bool authenticated() const { return authenticated_; }
    unsigned messages_accepted() const { return messages_accepted_; }

private:
    enum class Phase { command, data, closed };

    void process();
    void handle_command(std::string_view line);
    void handle_data_line(std::string_view line, bool crlf);
    void keep_line(std::string_view line);
    void finish_data();
    void cmd_ehlo(const std::string& argument);
    void finish_ehlo();
    // MAIL, RCPT and DATA need a successful EHLO; RCPT and DATA an open transaction,
    // MAIL none. Refuses (503 5.5.1) and returns false otherwise.
    bool sequence_allows(bool needs_transaction);
    void cmd_mail(const std::string& argument);
    void cmd_rcpt(const std::string& argument);
    void cmd_data();
    void cmd_starttls();
    void reset_transaction();
    void maybe_shutdown();
    void reply(const Reply& r);
    void refuse(Reason reason, std::string_view detail = {}, bool counts_as_error = true);
    void log_decision(std::string_view event, Reason reason, std::string_view extra_key = {},
                      std::string_view extra_value = {});
    Reply ehlo_reply() const;
    std::string trace_fields() const;
    bool tls_pending() const { return config_->starttls && !tls_.has_value(); }

    std::shared_ptr<const ServerConfig> config_;
    IpAddress peer_;
    std::string session_id_;
    LogSink log_;
    std::time_t started_ = 0;

    std::string in_;
    std::string out_;
    Phase phase_ = Phase::command;
    bool discarding_long_line_ = false;
    bool wants_tls_ = false;
    bool close_ = false;
    unsigned errors_ = 0;
    bool shutdown_requested_ = false;

    std::optional<TlsInfo> tls_;
    std::optional<Identity> identity_;
    bool lookup_requested_ = false;
    std::optional<IpAddress> lookup_;
    std::optional<ReverseDnsResult> reverse_;
    bool waiting_dns_ = false;
    std::string pending_ehlo_;                   // normalised EHLO name awaiting the PTR
    std::string ehlo_name_;
    std::string ptr_name_;
    bool authenticated_ = false;

    // Transaction.
    bool in_mail_ = false;
    Envelope envelope_;
    bool mpc_from_parameter_ = false;
    std::string message_;
    std::uint64_t message_size_ = 0;
    bool data_too_big_ = false;
    bool data_line_too_long_ = false;
    bool data_bare_lf_ = false;
    bool previous_line_crlf_ = true;
    HeaderScanner headers_;
    bool waiting_delivery_ = false;
    std::optional<DeliveryRequest> delivery_;
    unsigned messages_accepted_ = 0;
};

} // namespace amtp
