// Unusable configuration is the one thing the core reports by exception: it stops a
// program before it serves anyone. Decisions about peers are values (see reply.hpp).
#pragma once

#include <stdexcept>
#include <string>

namespace amtp {

class ConfigError : public std::runtime_error {
public:
    // Rendered as "file:line: key: message" with the parts that are known.
    ConfigError(std::string file, unsigned line, std::string key, std::string message);
    explicit ConfigError(std::string message);

    const std::string& file() const { return file_; }
    unsigned line() const { return line_; }
    const std::string& key() const { return key_; }
    const std::string& message() const { return message_; }

private:
    std::string file_;
    unsigned line_ = 0;
    std::string key_;
    std::string message_;
};

} // namespace amtp
