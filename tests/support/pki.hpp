// The test PKI (tests/support/make-test-pki.sh): built once per build tree, shared by
// every test process. See the script for the certificates it holds.
#pragma once

#include "amtp/handles.hpp"

#include <string>
#include <vector>

namespace amtp::test {

// <AMTP_TEST_WORK_DIR>/pki, built on first use. Safe when ctest runs many test
// processes at once: they take turns on a lock file and only the first one builds.
std::string pki_dir();

// pki_dir() + "/" + name, e.g. pki_file("client.chain.pem").
std::string pki_file(const std::string& name);

// Every certificate of a PEM file, in file order (leaf first for *.chain.pem).
X509StackPtr load_chain(const std::string& pem_file);

// The same certificates as DER blobs, as an MTA that exposes raw certificates gives them.
std::vector<std::string> der_chain(const std::string& pem_file);

// A one-line file the script wrote (NAME.sha256, NAME.serial, NAME.subject), without
// its line end.
std::string pki_fact(const std::string& name);

} // namespace amtp::test
