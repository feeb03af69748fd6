#include "amtp/errors.hpp"

namespace amtp {

namespace {
std::string render(const std::string& file, unsigned line, const std::string& key, const std::string& message)
{
    std::string out;
    if (!file.empty()) {
        out += file;
        if (line)
            out += ":" + std::to_string(line);
        out += ": ";
    }
    if (!key.empty())
        out += key + ": ";
    return out + message;
}
} // namespace

ConfigError::ConfigError(std::string file, unsigned line, std::string key, std::string message)
    : std::runtime_error(render(file, line, key, message)), file_(std::move(file)), line_(line),
      key_(std::move(key)), message_(std::move(message))
{
}

ConfigError::ConfigError(std::string message)
    : std::runtime_error(message), message_(std::move(message))
{
}

} // namespace amtp
