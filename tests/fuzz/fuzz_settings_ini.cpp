// The INI settings loader (profile B8): load_settings_string on arbitrary text.
//
// Input: the INI text.
//
// Invariants: the only exception is ConfigError (any other escapes and crashes the
// target); a loaded file has a host name, its local domains are normalised host
// names, relative paths were made absolute, and describe_settings (--check-config)
// can print it.
#include "fuzz_common.hpp"

#include "amtp/errors.hpp"
#include "amtp/names.hpp"
#include "amtp/settings.hpp"

#include <string>

using namespace amtp;

namespace {

void check_path(const std::string& path)
{
    FUZZ_CHECK(path.empty() || path.front() == '/');
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string text(reinterpret_cast<const char*>(data), size);
    Settings settings;
    try {
        settings = load_settings_string(text, "/etc/amtp/fuzz.ini");
    } catch (const ConfigError& e) {
        FUZZ_CHECK(e.what() != nullptr);
        return 0;
    }
    FUZZ_CHECK(!settings.hostname.empty());
    for (const auto& domain : settings.delivery.local_domains) {
        const auto norm = normalize_host_name(domain);
        FUZZ_CHECK(norm && *norm == domain);
    }
    check_path(settings.tls.certificate);
    check_path(settings.tls.key);
    for (const auto& f : settings.tls.trusted_ca)
        check_path(f);
    for (const auto& f : settings.tls.private_ca)
        check_path(f);
    check_path(settings.tls.crl);
    check_path(settings.policy.file);
    check_path(settings.delivery.maildir_root);
    check_path(settings.queue.directory);
    const std::string described = describe_settings(settings);
    FUZZ_CHECK(!described.empty());
    return 0;
}
