// A default soft limit of 1024 descriptors would make accept() fail long before
// limits.max-connections: a server raises its soft limit to the hard one at start.
#pragma once

#include "amtp/log.hpp"

#include <optional>

namespace amtp::net {

// Raises the soft RLIMIT_NOFILE to the hard limit. Returns the warning to log when even
// that is below what max_connections connections of per_connection descriptors each need.
std::optional<LogLine> raise_descriptor_limit(unsigned max_connections, unsigned per_connection);

} // namespace amtp::net
