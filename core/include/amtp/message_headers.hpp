// A streaming scanner over a message's header block, fed one line at a time (without
// its line ending), as the session, the Exim module and the OpenSMTPD filter all see
// messages. It finds a pre-existing MPC field (the message must be refused, draft
// s4.4.4) and the AMTP-MPC carrier field of profile B5, which it removes; given our
// authserv-id, it also removes every Authentication-Results field that claims to be
// ours (RFC 8601 s5): only our own field, written after the scan, may carry it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace amtp {

class HeaderScanner {
public:
    // Without an authserv-id no Authentication-Results field is examined.
    explicit HeaderScanner(std::string authserv_id = {});

    // Returns true when the line is to be kept in the message, false when it is
    // removed (an AMTP-MPC field, a forged Authentication-Results field) or held back.
    // Lines after the header block are always kept and no longer examined.
    //
    // An Authentication-Results field whose authserv-id is not on its first line (it
    // may follow a fold or a comment) is held until a later line shows it; when it
    // turns out not to be ours, take_released() gives the held lines back. A caller
    // that writes the kept lines out calls take_released() after every line() and
    // writes what it returns before the line itself.
    bool line(std::string_view line);
    // The header ended without its empty line (the data ended): settles a held field.
    void finish();
    std::vector<std::string> take_released();
    // A whole header block at once, for hosts whose MTA hands over the header: feeds
    // `lines` (without line ends), settles held lines and finishes. Per line, whether
    // it is kept (false: part of a carrier or a forged Authentication-Results field).
    std::vector<bool> scan(const std::vector<std::string_view>& lines);

    bool in_header() const { return in_header_; }
    bool has_mpc_field() const { return mpc_fields_ > 0; }
    // The unfolded, trimmed values of every AMTP-MPC field seen (normally one).
    const std::vector<std::string>& carrier_values() const { return carrier_values_; }
    // How many Authentication-Results fields claiming our authserv-id were removed.
    unsigned forged_results() const { return forged_results_; }

private:
    enum class Field { other, carrier, results_pending, results_forged };
    void settle_results(bool complete);
    bool hold_results_line(std::string_view raw);

    std::string authserv_id_;
    bool in_header_ = true;
    Field field_ = Field::other;   // what the current field is (continuations follow it)
    unsigned mpc_fields_ = 0;
    unsigned forged_results_ = 0;
    std::vector<std::string> carrier_values_;
    std::string carrier_raw_;      // the current AMTP-MPC value unfolded but untrimmed
    std::string results_raw_;      // the current Authentication-Results value, unfolded
    std::vector<std::string> held_;      // its lines, while undecided
    std::vector<std::string> released_;  // held lines found not to be ours
};

// A header block as its lines, split at LF (a CR before it stays: the scanner drops
// it); no empty last line for a block that ends in LF.
std::vector<std::string_view> header_lines(std::string_view text);

} // namespace amtp
