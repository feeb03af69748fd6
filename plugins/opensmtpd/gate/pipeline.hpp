// The SMTP-aware part of the gate's relay, sans-I/O. smtpd refuses pipelined commands
// ("500 5.5.1 Invalid command: Pipelining not supported") and does not advertise
// PIPELINING, while AMTP clients (RFC 2920) may pipeline. So the gate holds the
// client's commands and hands smtpd one at a time, each after the previous reply is
// complete, and adds PIPELINING to the EHLO reply it relays: the client may pipeline,
// smtpd never sees it. (It also gives smtpd's positive MAIL reply RFC 3463's
// address status 2.1.0, as amtpd does.) DATA content passes through line by line until the end mark,
// decided exactly as smtpd decides it (a line "." ending in LF, CR optional), so gate
// and smtpd never disagree on where a message ends.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace amtp::opensmtpd {

class Pipeline {
public:
    static constexpr std::size_t max_command_line = 4096;  // RFC 5321 asks for 512; be lenient
    // A partial line longer than this is passed on as it is (DATA content, or a reply
    // line of smtpd's): below Flow::cap, so that a long line never stops the reading.
    static constexpr std::size_t data_chunk = 4096;

    void from_client(std::string_view bytes);
    void from_server(std::string_view bytes);
    std::string take_for_server() { return std::exchange(to_server_, std::string{}); }
    std::string take_for_client() { return std::exchange(to_client_, std::string{}); }
    // A command line longer than max_command_line arrived: the gate answers it itself
    // and closes (smtpd would only ever see a truncated command).
    bool command_overflow() const { return overflow_; }
    bool in_data() const { return mode_ == Mode::data; }

    // Acknowledge after delivery (as amtpd does): with hold_acks on, smtpd's positive
    // reply to the end of DATA is held (and so is every later command) until
    // release_ack(). held_ack() names the message: smtpd's message id (the second
    // word of "250 2.0.0 4fbc9b38 Message accepted for delivery") and the number of
    // recipients smtpd accepted for it.
    void hold_acks(bool on) { hold_acks_ = on; }
    // A keyword line the gate adds to a positive EHLO reply before PIPELINING: the
    // site's MPC line (profile A, s4.4.2), which smtpd cannot advertise itself.
    void add_ehlo_keyword(std::string keyword) { ehlo_keywords_.push_back(std::move(keyword)); }
    struct HeldAck {
        std::string message_id;
        unsigned recipients = 0;
    };
    const std::optional<HeldAck>& held_ack() const { return held_; }
    void release_ack();

    // A line of the gate's own, sent to smtpd right after its greeting and before any
    // client command; its reply is not passed on (but a 421 is: smtpd is closing).
    // The gate sends its session token this way (see the filter's engine).
    void send_first(std::string line) { first_ = std::move(line); }

    // Bytes held here, waiting for their turn: the client's commands while smtpd has
    // not answered the previous one, and an unfinished line from either side. The
    // relay stops reading a side whose bytes pile up here (backpressure).
    std::size_t client_backlog() const { return client_in_.size(); }
    std::size_t server_backlog() const { return server_in_.size(); }

private:
    enum class Mode { command, data };
    void pump();
    void server_line(std::string line);

    std::string client_in_;
    std::string server_in_;
    std::string to_server_;
    std::string to_client_;
    Mode mode_ = Mode::command;
    bool awaiting_reply_ = true;   // smtpd's greeting comes first
    bool first_reply_line_ = true;
    bool data_line_start_ = true;
    bool overflow_ = false;
    std::string verb_;             // the command whose reply is awaited
    bool hold_acks_ = false;
    unsigned accepted_recipients_ = 0;
    std::optional<HeldAck> held_;
    std::string held_line_;
    std::vector<std::string> ehlo_keywords_;
    std::string first_;            // send_first()'s line, until it is sent
    bool swallow_reply_ = false;   // the reply awaited answers send_first()'s line
};

// When the relay reads from each side (sans-I/O, so the rules are unit-tested). A
// peer that sends without reading what it is sent must not make the gate, the filter
// or smtpd hold more than a few KiB for it: a side is read only while what it would
// add to is below `cap`: the other side's unsent bytes, the pipeline's backlog, and
// (for the client) the client's own unread replies.
struct Flow {
    static constexpr std::size_t cap = 8 * 1024;
    std::size_t client_unsent = 0;   // bytes for the client, not yet written to it
    std::size_t server_unsent = 0;   // bytes for smtpd, not yet written to it
    std::size_t client_backlog = 0;  // Pipeline::client_backlog()
    std::size_t server_backlog = 0;  // Pipeline::server_backlog()

    bool read_client() const { return client_backlog < cap && server_unsent < cap && client_unsent < cap; }
    bool read_server() const { return server_backlog < cap && client_unsent < cap; }
    // The idle timer is re-armed by client input only while the client has taken
    // every reply: input that only queues more output is no sign of a live peer.
    bool client_input_is_activity() const { return client_unsent == 0; }
};
// What the pipeline may hold without a line end must fit under the cap, or a side
// would stop being read while the pipeline waits for more of it.
static_assert(Pipeline::data_chunk < Flow::cap && Pipeline::max_command_line + 2 < Flow::cap);

} // namespace amtp::opensmtpd
