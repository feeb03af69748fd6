// One log line per decision, key=value, so an operator can grep a refused peer and
// learn exactly why. Peer-supplied text never reaches a log line or a header raw.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace amtp {

// Printable ASCII only: control characters, DEL and bytes >= 0x80 become \xHH, so CR
// and LF from a peer can never start a new log line, reply line or header field.
std::string printable(std::string_view text);

class LogLine {
public:
    explicit LogLine(std::string_view event);
    LogLine& kv(std::string_view key, std::string_view value);
    LogLine& kv(std::string_view key, const char* value) { return kv(key, std::string_view(value)); }
    LogLine& kv(std::string_view key, long long value);
    const std::string& str() const { return line_; }

private:
    std::string line_;
};

// Where a host wants the core's log lines; the core never writes to a stream itself.
using LogSink = std::function<void(const std::string& line)>;

} // namespace amtp
