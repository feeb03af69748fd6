// A streaming scanner over a message's header block, fed one line at a time (without
// its line ending), as the session, the Exim module and the OpenSMTPD filter all see
// messages. It finds a pre-existing MPC field (the message must be refused, draft
// s4.4.4) and the AMTP-MPC carrier field of profile B5, which it removes.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace amtp {

class HeaderScanner {
public:
    // Returns true when the line is to be kept in the message, false when it belongs
    // to an AMTP-MPC field (which the receiver removes). Lines after the header block
    // are always kept and no longer examined.
    bool line(std::string_view line);

    bool in_header() const { return in_header_; }
    bool has_mpc_field() const { return mpc_fields_ > 0; }
    // The unfolded, trimmed values of every AMTP-MPC field seen (normally one).
    const std::vector<std::string>& carrier_values() const { return carrier_values_; }

private:
    bool in_header_ = true;
    bool in_carrier_ = false;     // the current field is an AMTP-MPC one (continuations dropped)
    unsigned mpc_fields_ = 0;
    std::vector<std::string> carrier_values_;
    std::string carrier_raw_;     // the current AMTP-MPC value unfolded but untrimmed
};

} // namespace amtp
