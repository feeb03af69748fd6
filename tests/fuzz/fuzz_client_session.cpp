// The sending session fed arbitrary server bytes.
//
// Input: two control bytes, then the bytes the server sends.
//   [0] bits 0-1: number of recipients - 1 (1-4); bits 2-4: the MPC value to send;
//       bit 5: the null sender; bit 6: the message has dot lines and bare LFs;
//       bit 7: the connection is lost after the last chunk (else nothing more).
//   [1] seed of the chunk sizes (1 to 64 bytes, or whole lines when 0).
//
// Invariants: every command line written ends in CRLF and has no other CR or LF
// (the message body is checked for transparency only: no line "." before its end);
// nothing is written once done(); once done() every recipient is decided (never
// pending); a recipient's outcome reply for a server reply has a code 200-599.
#include "fuzz_common.hpp"

#include "amtp/client_session.hpp"

using namespace amtp;

namespace {

const char* const mpc_values[] = {"com/individual", "com/optin",    "net/autoresponse", "mpc/individual",
                                  "per/individual", "gov/customer", "com/optout",       "ngo/confirmed"};

OutgoingMessage make_message(std::uint8_t flags)
{
    OutgoingMessage m;
    m.sender = (flags & 32) ? "" : "alice@a.test";
    const char* const recipients[] = {"bob@b.test", "carol@b.test", "dave@b.test", "erin@c.test"};
    for (unsigned i = 0; i <= (flags & 3u); ++i)
        m.recipients.push_back(recipients[i]);
    m.mpc = *parse_mpc(mpc_values[(flags >> 2) & 7]).value;
    m.data = (flags & 64) ? "Subject: dots\n\n.\n..twice\r\nbare LF\n.end" : "Subject: hi\r\n\r\nHello.\r\n";
    return m;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    fuzz::Input in(data, size);
    const std::uint8_t flags = in.byte();
    const std::uint8_t chunk_seed = in.byte();

    ClientSession session("mx.a.test", make_message(flags));
    bool in_body = false;   // between DATA's 354 and the final dot, lines are message lines
    bool was_done = false;

    auto check = [&] {
        const std::string out = session.take_output();
        fuzz::trace("> ", out);
        if (was_done)
            FUZZ_CHECK(out.empty());
        FUZZ_CHECK(fuzz::crlf_lines(out));
        std::string_view rest = out;
        while (!rest.empty()) {
            const auto end = rest.find("\r\n");
            const std::string_view line = rest.substr(0, end);
            rest.remove_prefix(end + 2);
            if (in_body) {
                if (line == ".")
                    in_body = false;
                continue;
            }
            FUZZ_CHECK(!fuzz::has_control(line));
            if (line == "DATA")
                in_body = true;  // the body follows only after 354; pipelining sends none before
        }
        if (session.done()) {
            was_done = true;
            for (const auto& o : session.outcomes()) {
                FUZZ_CHECK(o.status != RecipientStatus::pending);
            }
        }
        for (const auto& o : session.outcomes())
            if (o.status != RecipientStatus::pending)
                FUZZ_CHECK(o.reply.code >= 200 && o.reply.code <= 599);
    };

    check();
    fuzz::Chunker chunker(chunk_seed);
    while (!in.empty()) {
        const std::string_view chunk = chunker.next(in);
        fuzz::trace("< ", chunk);
        session.receive(chunk);
        check();
    }
    if (fuzz::verbose())
        for (const auto& o : session.outcomes())
            std::fprintf(stderr, "[outcome] %s %d %s\n", o.recipient.c_str(), static_cast<int>(o.status),
                         o.reply.wire().c_str());
    if (flags & 128) {
        session.connection_lost("fuzz: connection lost");
        check();
        FUZZ_CHECK(session.done());
    }
    return 0;
}
