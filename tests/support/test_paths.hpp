// Where tests keep their files: a fresh directory per test under the build tree,
// never outside it.
#pragma once

#include <string>

namespace amtp::test {

// The repository root (for scripts under tests/support and docs/).
std::string source_dir();

// A new, empty directory for this test: <build>/test-work/<name>-<pid>-<n>.
std::string fresh_dir(const std::string& name);

// Writes a file (creating parents), returning its path.
std::string write_file(const std::string& path, const std::string& content);

// Reads a whole file; throws std::runtime_error when it cannot.
std::string read_file(const std::string& path);

// Runs a shell command, returning its exit status; output goes to the test's stderr.
int run_command(const std::string& command);

} // namespace amtp::test
