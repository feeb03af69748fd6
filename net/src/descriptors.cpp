#include "amtp/net/descriptors.hpp"

#include <sys/resource.h>

#include <string>

namespace amtp::net {

std::optional<LogLine> raise_descriptor_limit(unsigned max_connections, unsigned per_connection)
{
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return std::nullopt;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
        ::getrlimit(RLIMIT_NOFILE, &rl);
    }
    // A few more for listeners, logs, the resolver and files being written.
    const rlim_t wanted = static_cast<rlim_t>(per_connection) * max_connections + 64;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= wanted)
        return std::nullopt;
    const std::string times = per_connection == 1 ? "" : std::to_string(per_connection) + " x ";
    LogLine warning("warning");
    warning.kv("descriptors", std::to_string(rl.rlim_cur))
        .kv("max-connections", std::to_string(max_connections))
        .kv("detail", "the descriptor limit is below " + times + "limits.max-connections; raise it (ulimit -n)");
    return warning;
}

} // namespace amtp::net
