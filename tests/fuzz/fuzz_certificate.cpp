// Certificate name extraction and client verification from arbitrary DER.
//
// Input: one control byte, then the certificate bytes.
//   [0] bit 0: a private listener (else public); bit 1: a chain of two: two bytes
//       (big-endian) give the leaf's length, the leaf follows, the rest is the second
//       certificate; bit 2: the peer is 10.1.2.3 (the pin's network), else 127.0.0.2.
// Whatever d2i_X509 makes of the leaf bytes goes to describe_certificate; the blobs
// go to TrustStore::verify_client_der, with a store that trusts the test PKI's public
// root (public listener), its private root and one pinned certificate (private).
// The seeds are certificates of tests/support/make-test-pki.sh; the two roots are
// built in below and written to a temporary directory once, at start-up.
//
// Invariants: d2i_X509 consumes the blob or fails; describe_certificate's names,
// subject, issuer and serial (which reach logs and trace headers) hold no CR, LF or
// other control character; names are never empty; sha256 is 64 lower-case hex digits;
// verification gives an identity with a name or a reason, never both or neither.
#include "fuzz_common.hpp"

#include "amtp/errors.hpp"
#include "amtp/tls_identity.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

using namespace amtp;

namespace {

// tests/support/make-test-pki.sh: public-root.pem ("Test Public CA").
const char* const public_root_pem =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBoTCCAUagAwIBAgIUXyfNM0cMNT1tMV2JO2Uhkku6snYwCgYIKoZIzj0EAwIw\n"
    "LTESMBAGA1UECgwJQU1UUCBUZXN0MRcwFQYDVQQDDA5UZXN0IFB1YmxpYyBDQTAg\n"
    "Fw0wMDAxMDEwMDAwMDBaGA8yMTUwMDEwMTAwMDAwMFowLTESMBAGA1UECgwJQU1U\n"
    "UCBUZXN0MRcwFQYDVQQDDA5UZXN0IFB1YmxpYyBDQTBZMBMGByqGSM49AgEGCCqG\n"
    "SM49AwEHA0IABEPynLKZq67JXhmB4VdkczNbQPGdByeQW8IT7sN24W/q+dAlzeBQ\n"
    "lKrJVaOsEafSYXA3l5quV6l/sX3Qjsa0EvajQjBAMA8GA1UdEwEB/wQFMAMBAf8w\n"
    "DgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBRpbzKpj0qlSrpR9F7NZu1Lc7WLQDAK\n"
    "BggqhkjOPQQDAgNJADBGAiEA6KaP3BWGfLymqXkx2dylyNyRe30WuJPbuZBQBxXN\n"
    "nPwCIQCGCGBc5M3tiC50euncH2G1wy8lWmaWzsaDEpjJ31jiSw==\n"
    "-----END CERTIFICATE-----\n";

// private-root.pem ("ISP Private CA").
const char* const private_root_pem =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBlDCCATqgAwIBAgIUOQJ0J30OvKzpHjZFimYcXTjH3I4wCgYIKoZIzj0EAwIw\n"
    "JzEMMAoGA1UECgwDSVNQMRcwFQYDVQQDDA5JU1AgUHJpdmF0ZSBDQTAgFw0wMDAx\n"
    "MDEwMDAwMDBaGA8yMTUwMDEwMTAwMDAwMFowJzEMMAoGA1UECgwDSVNQMRcwFQYD\n"
    "VQQDDA5JU1AgUHJpdmF0ZSBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABM+E\n"
    "XSaRSZFtCaxaL11far7NBMbfD43DMQCQ66uyTIp2F8H6P0ggPDGYq91z/PbA7a2Y\n"
    "4sUNJrsXNp4oJ0yXnuGjQjBAMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQD\n"
    "AgEGMB0GA1UdDgQWBBRkyLo6G7p4myW7yKSs1HivyGgIoTAKBggqhkjOPQQDAgNI\n"
    "ADBFAiEAzA9+V6dVdvJuGUK6NclI81LmUxoHmAKbf5j1f1I8azMCIE2YuMiyYBjr\n"
    "6qqoqK9ZmzYEZ3XubV0pZL/+r9TF7opF\n"
    "-----END CERTIFICATE-----\n";

// pinned.der (dyn1.isp.test, self-signed).
const char* const pinned_sha256 = "a0541a1ea4470014ad652e9e8ea02733f9178a8a537dd55841da5ca2c6b27987";

std::shared_ptr<const TrustStore> make_store()
{
    char dir_template[] = "/tmp/amtp-fuzz-certs-XXXXXX";
    const char* dir = ::mkdtemp(dir_template);
    if (!dir) {
        std::perror("mkdtemp");
        std::abort();
    }
    const std::string pub = std::string(dir) + "/public-root.pem";
    const std::string priv = std::string(dir) + "/private-root.pem";
    std::ofstream(pub) << public_root_pem;
    std::ofstream(priv) << private_root_pem;

    TrustOptions options;
    options.public_ca_files = {pub};
    PrivateNetwork network;
    network.name = "isp";
    network.ca_files = {priv};
    network.pins.push_back({pinned_sha256, {*IpNetwork::parse("10.0.0.0/8")}});
    options.private_networks.push_back(network);
    auto store = TrustStore::load(options);
    ::unlink(pub.c_str());
    ::unlink(priv.c_str());
    ::rmdir(dir);
    return store;
}

void check_text(const std::string& s)
{
    FUZZ_CHECK(!fuzz::has_control(s));
}

void check_identity(const Identity& id)
{
    for (const auto& name : id.names) {
        FUZZ_CHECK(!name.empty());
        check_text(name);
    }
    check_text(id.subject);
    check_text(id.issuer);
    check_text(id.serial);
    FUZZ_CHECK(id.sha256.size() == 64);
    for (const char c : id.sha256)
        FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    static const std::shared_ptr<const TrustStore> store = make_store();

    fuzz::Input in(data, size);
    const std::uint8_t flags = in.byte();
    std::vector<std::string> chain;
    if (flags & 2) {
        const std::size_t length = (std::size_t{in.byte()} << 8) | in.byte();
        chain.emplace_back(in.take(length));
        chain.emplace_back(in.rest());
    } else {
        chain.emplace_back(in.rest());
    }

    // Name extraction alone, on whatever OpenSSL makes of the bytes.
    const auto* p = reinterpret_cast<const unsigned char*>(chain.front().data());
    X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(chain.front().size())));
    if (cert) {
        FUZZ_CHECK(p <= reinterpret_cast<const unsigned char*>(chain.front().data()) + chain.front().size());
        check_identity(describe_certificate(cert.get()));
    }

    // Verification, as an adapter hands over its MTA's DER blobs.
    const auto listener = (flags & 1) ? ListenerKind::private_network : ListenerKind::public_network;
    const auto peer = *IpAddress::parse((flags & 4) ? "10.1.2.3" : "127.0.0.2");
    const auto result = store->verify_client_der(chain, listener, peer, 1800000000);
    FUZZ_CHECK(result.ok() == (result.reason == Reason::none));
    check_text(result.detail);
    if (result.identity) {
        check_identity(*result.identity);
        FUZZ_CHECK(!result.identity->names.empty());
    }
    // OpenSSL's error queue keeps what a failed parse left (the core reads its words
    // for `detail`): emptied here so that every run frees what it allocates, or
    // libFuzzer re-runs each input under LeakSanitizer and fuzzes a hundred times slower.
    ERR_clear_error();
    return 0;
}
