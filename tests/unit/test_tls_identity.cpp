// The TLS identity of a peer (draft s3.1, s4.2, s7; profile B2, B3), against the
// certificates of tests/support/make-test-pki.sh.
#include <catch2/catch.hpp>

#include "amtp/errors.hpp"
#include "amtp/names.hpp"
#include "amtp/tls_identity.hpp"
#include "support/pki.hpp"
#include "support/test_paths.hpp"

#include <openssl/err.h>

#include <cctype>
#include <ctime>
#include <string>
#include <vector>

using namespace amtp;
using amtp::test::der_chain;
using amtp::test::load_chain;
using amtp::test::pki_fact;
using amtp::test::pki_file;

namespace {

constexpr std::time_t jan_2024 = 1704067200;  // leaves' notBefore
constexpr std::time_t jan_2090 = 3786912000;  // leaves' notAfter
constexpr std::time_t jun_2020 = 1590969600;  // inside the "expired" leaves' validity
constexpr std::time_t jun_2023 = 1685577600;  // before the ordinary leaves' validity

const IpAddress public_peer = *IpAddress::parse("192.0.2.10");
const IpAddress customer_peer = *IpAddress::parse("10.8.1.2");  // inside the ISP's 10.8.0.0/16

std::time_t now()
{
    return std::time(nullptr);
}

// A CRL for `ca` made with the openssl command at test time, with the given
// lastUpdate and nextUpdate (YYYYMMDDHHMMSSZ). Returns the PEM file.
std::string crl_made_now(const std::string& ca, const std::string& last, const std::string& next)
{
    const std::string dir = amtp::test::fresh_dir("crl");
    amtp::test::write_file(dir + "/index.txt", "");
    amtp::test::write_file(dir + "/crlnumber", "1000\n");
    amtp::test::write_file(dir + "/ca.cnf", "[ ca ]\ndefault_ca = c\n[ c ]\ndatabase = " + dir +
                                                "/index.txt\ncrlnumber = " + dir + "/crlnumber\ncertificate = " +
                                                pki_file(ca + ".pem") + "\nprivate_key = " +
                                                pki_file(ca + ".key") +
                                                "\ndefault_md = sha256\n");
    const std::string out = dir + "/" + ca + ".crl.pem";
    const std::string command = "openssl ca -batch -config '" + dir + "/ca.cnf' -gencrl -crl_lastupdate " + last +
                                " -crl_nextupdate " + next + " -out '" + out + "' 2>/dev/null";
    REQUIRE(amtp::test::run_command(command) == 0);
    return out;
}

TrustOptions public_options()
{
    TrustOptions options;
    options.public_ca_files = {pki_file("public-root.pem")};
    return options;
}

PinnedCertificate pin(const std::string& leaf, const std::string& network)
{
    PinnedCertificate pinned;
    pinned.sha256 = pki_fact(leaf + ".sha256");
    pinned.from = {*IpNetwork::parse(network)};
    return pinned;
}

// Public CAs, plus the ISP's private network: its CA and its customers' pinned
// self-signed certificates, valid from 10.8.0.0/16.
TrustOptions isp_options()
{
    TrustOptions options = public_options();
    PrivateNetwork isp;
    isp.name = "isp";
    isp.ca_files = {pki_file("private-root.pem")};
    isp.pins = {pin("pinned", "10.8.0.0/16"), pin("pinned-expired", "10.8.0.0/16"),
                pin("pinned-noname", "10.8.0.0/16")};
    options.private_networks = {isp};
    return options;
}

std::shared_ptr<const TrustStore> trust(const TrustOptions& options = public_options())
{
    return TrustStore::load(options);
}

// The leaf's chain file, as a client would send it.
IdentityResult client(const TrustStore& store, const std::string& leaf,
                      ListenerKind listener = ListenerKind::public_network, const IpAddress& peer = public_peer,
                      std::time_t when = now())
{
    const X509StackPtr chain = load_chain(pki_file(leaf + ".chain.pem"));
    return store.verify_client(chain.get(), listener, peer, when);
}

IdentityResult server(const TrustStore& store, const std::string& leaf, std::string_view expected,
                      std::time_t when = now())
{
    const X509StackPtr chain = load_chain(pki_file(leaf + ".chain.pem"));
    return store.verify_server(chain.get(), expected, when);
}

// The reason by name and OpenSSL's words, for failure messages.
std::string why(const IdentityResult& result)
{
    return std::string(reason_name(result.reason)) + " (" + result.detail + ")";
}

} // namespace

// Each evaluates its expression once and shows the reason by name when it fails.
#define REQUIRE_ACCEPTED(expression)                 \
    do {                                             \
        const IdentityResult& accepted_ = (expression); \
        INFO(why(accepted_));                        \
        REQUIRE(accepted_.ok());                     \
    } while (false)

#define CHECK_REFUSED(expression, expected_reason)        \
    do {                                                  \
        const IdentityResult& refused_ = (expression);    \
        INFO(why(refused_));                              \
        CHECK_FALSE(refused_.ok());                       \
        CHECK(refused_.reason == (expected_reason));      \
    } while (false)

// ---------------------------------------------------------------- public listener

TEST_CASE("A client certificate from a public CA is accepted on a public listener", "[tls]")
{
    const auto store = trust();
    const X509StackPtr chain = load_chain(pki_file("client.chain.pem"));
    const auto result = store->verify_client(chain.get(), ListenerKind::public_network, public_peer, now());
    REQUIRE_ACCEPTED(result);
    CHECK(result.reason == Reason::none);
    CHECK(result.identity->names == std::vector<std::string>{"mx.a.test"});
    CHECK(result.identity->trust == TrustKind::public_ca);
    CHECK_FALSE(result.identity->is_private());
    CHECK(result.identity->private_network.empty());
    CHECK(client_name_matches(result.identity->names, "MX.A.TEST"));
    CHECK(sk_X509_num(chain.get()) == 2);  // the caller's chain is left as it was
}

TEST_CASE("A client without a certificate is refused with no_client_cert", "[tls]")
{
    const auto store = trust();
    CHECK_REFUSED(store->verify_client(nullptr, ListenerKind::public_network, public_peer, now()),
                  Reason::no_client_cert);
    const X509StackPtr empty(sk_X509_new_null());
    CHECK_REFUSED(store->verify_client(empty.get(), ListenerKind::public_network, public_peer, now()),
                  Reason::no_client_cert);
    CHECK_REFUSED(store->verify_client_der({}, ListenerKind::public_network, public_peer, now()),
                  Reason::no_client_cert);
    CHECK_REFUSED(store->verify_client(nullptr, ListenerKind::private_network, customer_peer, now()),
                  Reason::no_client_cert);
}

TEST_CASE("An expired client certificate is refused with cert_expired", "[tls]")
{
    const auto result = client(*trust(), "expired");
    CHECK_REFUSED(result, Reason::cert_expired);
    CHECK(result.detail == "certificate has expired");
}

TEST_CASE("A client certificate that is not yet valid is refused with cert_not_yet_valid", "[tls]")
{
    CHECK_REFUSED(client(*trust(), "not-yet-valid"), Reason::cert_not_yet_valid);
}

TEST_CASE("Certificate dates are checked at the given time and not by the clock", "[tls]")
{
    const auto store = trust();
    REQUIRE_ACCEPTED(client(*store, "expired", ListenerKind::public_network, public_peer, jun_2020));
    CHECK_REFUSED(client(*store, "client", ListenerKind::public_network, public_peer, jun_2023),
                  Reason::cert_not_yet_valid);
    CHECK_REFUSED(client(*store, "client", ListenerKind::public_network, public_peer, jan_2090 + 1),
                  Reason::cert_expired);
}

TEST_CASE("A client certificate from an unknown CA is refused with untrusted_issuer", "[tls]")
{
    const auto store = trust();
    const auto result = client(*store, "other-ca");
    CHECK_REFUSED(result, Reason::untrusted_issuer);
    CHECK(result.detail == "unable to get local issuer certificate");

    // The unknown root sent along: "self-signed certificate in certificate chain".
    const X509StackPtr with_root = load_chain(pki_file("other-ca.chain.pem"));
    X509Ptr other_root = load_certificate_file(pki_file("other-root.pem"));
    REQUIRE(sk_X509_push(with_root.get(), other_root.get()) > 0);
    other_root.release();
    CHECK_REFUSED(store->verify_client(with_root.get(), ListenerKind::public_network, public_peer, now()),
                  Reason::untrusted_issuer);
}

TEST_CASE("A client certificate sent without its intermediate is refused with untrusted_issuer", "[tls]")
{
    // The client must send the intermediate: the trust store holds roots only.
    const X509StackPtr leaf_only = load_chain(pki_file("client.pem"));
    CHECK_REFUSED(trust()->verify_client(leaf_only.get(), ListenerKind::public_network, public_peer, now()),
                  Reason::untrusted_issuer);
}

TEST_CASE("A self-signed client certificate is refused on a public listener with untrusted_issuer", "[tls]")
{
    const auto result = client(*trust(isp_options()), "pinned");
    CHECK_REFUSED(result, Reason::untrusted_issuer);
    CHECK(result.detail == "self-signed certificate");
}

TEST_CASE("A client certificate with a broken signature is refused with cert_invalid", "[tls]")
{
    auto blobs = der_chain(pki_file("client.chain.pem"));
    blobs[0].back() = static_cast<char>(blobs[0].back() ^ 0x01);  // last byte of the signature
    const auto result = trust()->verify_client_der(blobs, ListenerKind::public_network, public_peer, now());
    CHECK_REFUSED(result, Reason::cert_invalid);
    CHECK(result.detail == "certificate signature failure");
}

// ---------------------------------------------------------------- remembered verdicts

TEST_CASE("A chain verified once is accepted again with the same identity, and no verdict outlives its dates", "[tls]")
{
    const auto store = trust();
    const auto first = client(*store, "client");
    REQUIRE_ACCEPTED(first);
    const auto again = client(*store, "client");
    REQUIRE_ACCEPTED(again);
    CHECK(again.identity->names == first.identity->names);
    CHECK(again.identity->sha256 == first.identity->sha256);
    CHECK(again.identity->trust == first.identity->trust);
    // The remembered verdict is for the time it was made onwards, until the chain expires.
    CHECK_REFUSED(client(*store, "client", ListenerKind::public_network, public_peer, jan_2090 + 1),
                  Reason::cert_expired);
    CHECK_REFUSED(client(*store, "client", ListenerKind::public_network, public_peer, jun_2023),
                  Reason::cert_not_yet_valid);
    REQUIRE_ACCEPTED(client(*store, "client"));
}

TEST_CASE("A verdict remembered for the public store is not one for a private listener", "[tls]")
{
    TrustOptions options = public_options();
    options.private_ca_files = {pki_file("private-root.pem")};
    const auto store = trust(options);
    REQUIRE_ACCEPTED(client(*store, "client"));
    CHECK_REFUSED(client(*store, "client", ListenerKind::private_network, customer_peer), Reason::untrusted_issuer);
    REQUIRE_ACCEPTED(client(*store, "private", ListenerKind::private_network, customer_peer));
    CHECK_REFUSED(client(*store, "private"), Reason::untrusted_issuer);
}

TEST_CASE("The remembered verdict of a chain is not given to the same leaf with a tampered chain", "[tls]")
{
    const auto store = trust();
    std::vector<std::string> blobs = der_chain(pki_file("client.chain.pem"));
    REQUIRE_ACCEPTED(store->verify_client_der(blobs, ListenerKind::public_network, public_peer, now()));
    blobs[1].back() = static_cast<char>(blobs[1].back() ^ 0x01);  // the intermediate's signature
    CHECK_REFUSED(store->verify_client_der(blobs, ListenerKind::public_network, public_peer, now()),
                  Reason::cert_invalid);
}

// ---------------------------------------------------------------- revocation

TEST_CASE("A revoked client certificate is refused with cert_revoked", "[tls]")
{
    TrustOptions options = public_options();
    options.crl_file = pki_file("public-chain.crl.pem");
    CHECK_REFUSED(client(*trust(options), "revoked"), Reason::cert_revoked);
}

TEST_CASE("With a CRL file a client certificate it does not list is accepted", "[tls]")
{
    TrustOptions options = public_options();
    options.crl_file = pki_file("public-chain.crl.pem");
    REQUIRE_ACCEPTED(client(*trust(options), "client"));
}

TEST_CASE("A missing CRL for a CA above the leaf does not refuse the client", "[tls]")
{
    // Only the intermediate's CRL: the intermediate itself cannot be checked against
    // the root's CRL, which is tolerated; the leaf still is checked.
    TrustOptions options = public_options();
    options.crl_file = pki_file("public-intermediate.crl.pem");
    const auto store = trust(options);
    REQUIRE_ACCEPTED(client(*store, "client"));
    CHECK_REFUSED(client(*store, "revoked"), Reason::cert_revoked);
}

TEST_CASE("A stale CRL is a local fault: a missing CRL for the leaf's issuer refuses with the temporary crl_missing", "[tls]")
{
    // Fail closed: with revocation checking on, a client whose revocation cannot be
    // checked is not let in; but the file is ours to fix, so the refusal is a 4xx.
    TrustOptions options = public_options();
    options.crl_file = pki_file("public-root.crl.pem");
    const auto result = client(*trust(options), "client");
    CHECK_REFUSED(result, Reason::crl_missing);
    CHECK(result.detail == "unable to get certificate CRL");
    CHECK(reply_for(result.reason).temporary());
}

TEST_CASE("A stale CRL is a local fault: an expired CRL refuses with the temporary crl_stale", "[tls]")
{
    // A real CRL, signed by the intermediate with openssl now, valid only in 2020.
    const std::string crl = crl_made_now("public-intermediate", "20200101000000Z", "20210101000000Z");
    TrustOptions options = public_options();
    options.crl_file = crl;
    const auto store = trust(options);
    const auto result = client(*store, "client");
    CHECK_REFUSED(result, Reason::crl_stale);
    CHECK(result.detail == "CRL has expired");
    CHECK(reply_for(result.reason).temporary());
    CHECK(reply_for(result.reason).code == 451);
    // Even a certificate the stale list names is refused only temporarily: nothing
    // can be decided until the list is renewed.
    CHECK_REFUSED(client(*store, "revoked"), Reason::crl_stale);
    // The same CRL, current at the time of the check, decides as usual.
    const std::string current = crl_made_now("public-intermediate", "20240101000000Z", "20990101000000Z");
    options.crl_file = current;
    REQUIRE_ACCEPTED(client(*trust(options), "client"));
}

TEST_CASE("A stale CRL is a local fault: a CRL not yet valid refuses with the temporary crl_stale", "[tls]")
{
    TrustOptions options = public_options();
    options.crl_file = crl_made_now("public-intermediate", "20980101000000Z", "20990101000000Z");
    CHECK_REFUSED(client(*trust(options), "client"), Reason::crl_stale);
}

TEST_CASE("A stale CRL is a local fault: a CRL whose signature fails refuses with the temporary crl_missing", "[tls]")
{
    // The intermediate's current CRL in DER with the last byte of its signature changed.
    const std::string pem = crl_made_now("public-intermediate", "20240101000000Z", "20990101000000Z");
    const std::string der = pem + ".der";
    REQUIRE(amtp::test::run_command("openssl crl -in '" + pem + "' -outform DER -out '" + der + "'") == 0);
    std::string bytes = amtp::test::read_file(der);
    REQUIRE_FALSE(bytes.empty());
    bytes.back() = static_cast<char>(bytes.back() ^ 0x01);
    amtp::test::write_file(der, bytes);
    TrustOptions options = public_options();
    options.crl_file = der;
    const auto result = client(*trust(options), "client");
    CHECK_REFUSED(result, Reason::crl_missing);
    CHECK(reply_for(result.reason).temporary());
}

TEST_CASE("Without a CRL file revocation is not checked", "[tls]")
{
    REQUIRE_ACCEPTED(client(*trust(), "revoked"));
}

// ---------------------------------------------------------------- key usage (B3)

TEST_CASE("A serverAuth-only client certificate is accepted by default (profile B3)", "[tls]")
{
    const auto result = client(*trust(), "server-only");
    REQUIRE_ACCEPTED(result);
    CHECK(result.identity->names == std::vector<std::string>{"mx.c.test"});
}

TEST_CASE("A serverAuth-only client certificate is refused with cert_purpose when clientAuth is required", "[tls]")
{
    TrustOptions options = public_options();
    options.require_client_eku = true;
    const auto store = trust(options);
    const auto result = client(*store, "server-only");
    CHECK_REFUSED(result, Reason::cert_purpose);
    CHECK(result.detail == "extended key usage does not allow TLS client authentication");
    REQUIRE_ACCEPTED(client(*store, "client"));  // clientAuth + serverAuth
}

TEST_CASE("A client certificate without an extended key usage is accepted even when clientAuth is required", "[tls]")
{
    TrustOptions options = public_options();
    options.require_client_eku = true;
    REQUIRE_ACCEPTED(client(*trust(options), "cn-only"));
}

TEST_CASE("A client certificate for e-mail protection only is refused with cert_purpose", "[tls]")
{
    const auto result = client(*trust(), "email-only");
    CHECK_REFUSED(result, Reason::cert_purpose);
    CHECK(result.detail == "extended key usage allows neither TLS client nor server authentication");
}

// ---------------------------------------------------------------- names (B2)

TEST_CASE("A client certificate's names are its SAN dNSNames and its CN is then ignored", "[tls]")
{
    const auto result = client(*trust(), "san-only");
    REQUIRE_ACCEPTED(result);
    CHECK(result.identity->names == std::vector<std::string>{"mail.a.test", "mx2.a.test"});  // MX2.A.TEST normalised
    CHECK(result.identity->subject == "CN=Mail Server");
    CHECK_FALSE(client_name_matches(result.identity->names, "Mail Server"));
}

TEST_CASE("A client certificate without a SAN is named by its subject CN", "[tls]")
{
    const auto result = client(*trust(), "cn-only");
    REQUIRE_ACCEPTED(result);
    CHECK(result.identity->names == std::vector<std::string>{"cn.a.test"});
    CHECK(client_name_matches(result.identity->names, "cn.a.test"));
}

TEST_CASE("A client certificate naming no host is refused with cert_no_name", "[tls]")
{
    const auto result = client(*trust(), "no-name");
    CHECK_REFUSED(result, Reason::cert_no_name);
}

TEST_CASE("A wildcard client certificate never matches an EHLO name", "[tls]")
{
    // The identity is kept (the trace shows what was presented); the EHLO binding fails.
    const auto result = client(*trust(), "wildcard");
    REQUIRE_ACCEPTED(result);
    CHECK(result.identity->names == std::vector<std::string>{"*.a.test"});
    for (const char* ehlo : {"mx.a.test", "*.a.test", "a.test", "MX.A.TEST."}) {
        INFO(ehlo);
        CHECK_FALSE(client_name_matches(result.identity->names, ehlo));
    }
}

// ---------------------------------------------------------------- private networks (s7)

TEST_CASE("A private-CA client certificate is accepted on a private listener", "[tls]")
{
    const auto result = client(*trust(isp_options()), "private", ListenerKind::private_network, public_peer);
    REQUIRE_ACCEPTED(result);
    CHECK(result.identity->trust == TrustKind::private_ca);
    CHECK(result.identity->private_network == "isp");
    CHECK(result.identity->is_private());
    CHECK(result.identity->names == std::vector<std::string>{"host1.customers.isp.test"});
}

TEST_CASE("A certificate from tls.private-ca belongs to the private network named private", "[tls]")
{
    TrustOptions options = public_options();
    options.private_ca_files = {pki_file("private-root.pem")};
    const auto result = client(*trust(options), "private", ListenerKind::private_network);
    REQUIRE_ACCEPTED(result);
    CHECK(result.identity->trust == TrustKind::private_ca);
    CHECK(result.identity->private_network == "private");
}

TEST_CASE("A private-CA client certificate is refused on a public listener with untrusted_issuer", "[tls]")
{
    CHECK_REFUSED(client(*trust(isp_options()), "private", ListenerKind::public_network), Reason::untrusted_issuer);
}

TEST_CASE("A public client certificate is refused on a private listener with untrusted_issuer", "[tls]")
{
    CHECK_REFUSED(client(*trust(isp_options()), "client", ListenerKind::private_network, customer_peer),
                  Reason::untrusted_issuer);
    // With no private trust configured at all, too.
    const auto result = client(*trust(), "client", ListenerKind::private_network, customer_peer);
    CHECK_REFUSED(result, Reason::untrusted_issuer);
    CHECK(result.detail == "no private CA or pinned certificate is configured");
}

TEST_CASE("A private network refusal names the real problem rather than another network distrust", "[tls]")
{
    // Two networks: the chain is unknown to "other" but reaches its anchor in "isp",
    // where the date is what fails.
    TrustOptions options = isp_options();
    PrivateNetwork other;
    other.name = "other";
    other.ca_files = {pki_file("other-root.pem")};
    options.private_networks.insert(options.private_networks.begin(), other);
    CHECK_REFUSED(client(*trust(options), "private", ListenerKind::private_network, customer_peer, jun_2023),
                  Reason::cert_not_yet_valid);
}

TEST_CASE("A pinned self-signed client certificate is accepted from its network", "[tls]")
{
    const auto result = client(*trust(isp_options()), "pinned", ListenerKind::private_network, customer_peer);
    REQUIRE_ACCEPTED(result);
    CHECK(result.identity->trust == TrustKind::pinned);
    CHECK(result.identity->private_network == "isp");
    CHECK(result.identity->is_private());
    CHECK(result.identity->names == std::vector<std::string>{"dyn1.isp.test"});
    CHECK(result.identity->sha256 == pki_fact("pinned.sha256"));
}

TEST_CASE("A pinned client certificate from another network is refused with pin_wrong_network", "[tls]")
{
    const auto result = client(*trust(isp_options()), "pinned", ListenerKind::private_network, public_peer);
    CHECK_REFUSED(result, Reason::pin_wrong_network);
    CHECK(result.detail.find("192.0.2.10") != std::string::npos);
}

TEST_CASE("A pinned client certificate still needs valid dates", "[tls]")
{
    const auto store = trust(isp_options());
    CHECK_REFUSED(client(*store, "pinned-expired", ListenerKind::private_network, customer_peer),
                  Reason::cert_expired);
    CHECK_REFUSED(client(*store, "pinned", ListenerKind::private_network, customer_peer, jun_2023),
                  Reason::cert_not_yet_valid);
}

TEST_CASE("A pinned client certificate still needs a name", "[tls]")
{
    CHECK_REFUSED(client(*trust(isp_options()), "pinned-noname", ListenerKind::private_network, customer_peer),
                  Reason::cert_no_name);
}

TEST_CASE("A pinned client certificate is held to the same key usage rule", "[tls]")
{
    // A pin may name any certificate; mx.c.test is serverAuth-only.
    TrustOptions options = isp_options();
    options.private_networks[0].pins.push_back(pin("server-only", "10.8.0.0/16"));
    options.require_client_eku = true;
    const auto store = trust(options);
    CHECK_REFUSED(client(*store, "server-only", ListenerKind::private_network, customer_peer), Reason::cert_purpose);
    REQUIRE_ACCEPTED(client(*store, "pinned", ListenerKind::private_network, customer_peer));  // clientAuth

    options.require_client_eku = false;
    const auto result = client(*trust(options), "server-only", ListenerKind::private_network, customer_peer);
    REQUIRE_ACCEPTED(result);
    CHECK(result.identity->trust == TrustKind::pinned);
}

TEST_CASE("A pin written with colons and upper-case hex matches", "[tls]")
{
    std::string colons;
    for (char c : pki_fact("pinned.sha256")) {
        if (!colons.empty() && colons.size() % 3 == 2)
            colons += ':';
        colons += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    TrustOptions options = public_options();
    PrivateNetwork isp;
    isp.name = "isp";
    isp.pins = {PinnedCertificate{colons, {*IpNetwork::parse("10.8.0.0/16")}}};
    options.private_networks = {isp};
    REQUIRE_ACCEPTED(client(*trust(options), "pinned", ListenerKind::private_network, customer_peer));
}

// ---------------------------------------------------------------- DER chains

TEST_CASE("A DER chain gives the same identity as the X509 chain", "[tls]")
{
    const auto store = trust(isp_options());
    for (const char* leaf : {"client", "server-only", "san-only", "cn-only", "wildcard", "private"}) {
        INFO(leaf);
        const auto listener = std::string(leaf) == "private" ? ListenerKind::private_network
                                                             : ListenerKind::public_network;
        const auto from_x509 = client(*store, leaf, listener);
        const auto from_der =
            store->verify_client_der(der_chain(pki_file(std::string(leaf) + ".chain.pem")), listener, public_peer, now());
        REQUIRE_ACCEPTED(from_x509);
        REQUIRE_ACCEPTED(from_der);
        const Identity& a = *from_x509.identity;
        const Identity& b = *from_der.identity;
        CHECK(a.names == b.names);
        CHECK(a.subject == b.subject);
        CHECK(a.issuer == b.issuer);
        CHECK(a.serial == b.serial);
        CHECK(a.sha256 == b.sha256);
        CHECK(a.not_before == b.not_before);
        CHECK(a.not_after == b.not_after);
        CHECK(a.trust == b.trust);
        CHECK(a.private_network == b.private_network);
    }
    // Refusals agree too.
    for (const char* leaf : {"expired", "other-ca", "email-only"}) {
        INFO(leaf);
        const auto from_der = store->verify_client_der(der_chain(pki_file(std::string(leaf) + ".chain.pem")),
                                                       ListenerKind::public_network, public_peer, now());
        CHECK(from_der.reason == client(*store, leaf).reason);
    }
}

TEST_CASE("A DER blob that is not exactly one certificate is refused with cert_invalid", "[tls]")
{
    const auto store = trust();
    const auto good = der_chain(pki_file("client.chain.pem"));
    const std::vector<std::vector<std::string>> bad_chains = {
        {std::string("garbage")},
        {std::string()},
        {std::string(1, '\x30')},
        {good[0].substr(0, good[0].size() / 2)},  // truncated
        {good[0] + std::string(1, '\0')},         // trailing byte
        {good[0] + good[1]},                      // two certificates in one blob
        {good[0], std::string("\x30\x82\xff\xff", 4)},
        {std::string(100000, '\xff')},
    };
    for (const auto& chain : bad_chains) {
        const auto result = store->verify_client_der(chain, ListenerKind::public_network, public_peer, now());
        CHECK_REFUSED(result, Reason::cert_invalid);
    }
    // A PEM text handed in as if it were DER.
    const auto pem = amtp::test::read_file(pki_file("client.pem"));
    CHECK_REFUSED(store->verify_client_der({pem}, ListenerKind::public_network, public_peer, now()),
                  Reason::cert_invalid);
}

// ---------------------------------------------------------------- configuration

TEST_CASE("A missing or unreadable CA file is a ConfigError naming the file", "[tls]")
{
    const std::string dir = amtp::test::fresh_dir("tls-config");
    const std::string missing = dir + "/no-such-ca.pem";
    const auto message_of = [](const TrustOptions& options) -> std::string {
        try {
            TrustStore::load(options);
        } catch (const ConfigError& e) {
            return e.what();
        }
        return "no ConfigError";
    };

    TrustOptions options;
    options.public_ca_files = {missing};
    auto message = message_of(options);
    CHECK(message.find(missing) != std::string::npos);
    CHECK(message.find("No such file") != std::string::npos);

    const std::string garbage = amtp::test::write_file(dir + "/garbage.pem", "this is no certificate\n");
    options.public_ca_files = {garbage};
    CHECK(message_of(options).find(garbage) != std::string::npos);

    const std::string damaged = amtp::test::write_file(
        dir + "/damaged.pem", amtp::test::read_file(pki_file("public-root.pem")) +
                                  "-----BEGIN CERTIFICATE-----\nnot base64 !!!\n-----END CERTIFICATE-----\n");
    options.public_ca_files = {damaged};
    CHECK(message_of(options).find(damaged) != std::string::npos);

    options.public_ca_files = {dir};  // a directory
    CHECK(message_of(options).find(dir) != std::string::npos);

    options = public_options();
    options.private_ca_files = {missing};
    CHECK(message_of(options).find(missing) != std::string::npos);

    options = isp_options();
    options.private_networks[0].ca_files = {missing};
    message = message_of(options);
    CHECK(message.find(missing) != std::string::npos);
    CHECK(message.find("isp") != std::string::npos);

    options = public_options();
    options.crl_file = missing;
    CHECK(message_of(options).find(missing) != std::string::npos);
    options.crl_file = pki_file("public-root.pem");  // a certificate, not a CRL
    CHECK(message_of(options).find("public-root.pem") != std::string::npos);
}

TEST_CASE("A CA file may be DER as well as PEM", "[tls]")
{
    TrustOptions options;
    options.public_ca_files = {pki_file("public-root.der")};
    REQUIRE_ACCEPTED(client(*trust(options), "client"));
}

TEST_CASE("A private CA that is also trusted publicly is a configuration error (draft s7)", "[tls]")
{
    TrustOptions options = isp_options();
    options.public_ca_files.push_back(pki_file("private-root.pem"));
    CHECK_THROWS_AS(TrustStore::load(options), ConfigError);
}

TEST_CASE("A pin that is not a SHA-256 fingerprint is a configuration error", "[tls]")
{
    for (const char* bad : {"", "abc", "zz", "sha256:0123"}) {
        INFO(bad);
        TrustOptions options = isp_options();
        options.private_networks[0].pins[0].sha256 = bad;
        CHECK_THROWS_AS(TrustStore::load(options), ConfigError);
    }
}

// ---------------------------------------------------------------- identity fields

TEST_CASE("Identity fields agree with what the openssl command line says", "[tls]")
{
    const auto result = client(*trust(), "client");
    REQUIRE_ACCEPTED(result);
    const Identity& identity = *result.identity;
    CHECK(identity.sha256 == pki_fact("client.sha256"));
    CHECK(identity.sha256.size() == 64);
    CHECK(identity.serial == pki_fact("client.serial"));
    CHECK(identity.subject == pki_fact("client.subject"));
    CHECK(identity.subject == "CN=mx.a.test,O=Test A");
    CHECK(identity.issuer == "CN=Test Public Intermediate CA,O=AMTP Test");
    CHECK(identity.not_before == jan_2024);
    CHECK(identity.not_after == jan_2090);
}

TEST_CASE("describe_certificate reads a PEM or DER file without verifying it", "[tls]")
{
    const Identity pem = describe_certificate(load_certificate_file(pki_file("expired.pem")).get());
    const Identity der = describe_certificate(load_certificate_file(pki_file("expired.der")).get());
    CHECK(pem.names == std::vector<std::string>{"mx.a.test"});
    CHECK(pem.sha256 == pki_fact("expired.sha256"));
    CHECK(pem.serial == pki_fact("expired.serial"));
    CHECK(der.sha256 == pem.sha256);
    CHECK(der.subject == pem.subject);
    CHECK(pem.not_before == 1577836800);  // 2020-01-01
    CHECK(pem.not_after == 1609459200);   // 2021-01-01
    CHECK(describe_certificate(nullptr).sha256.empty());
    CHECK_THROWS_AS(load_certificate_file(pki_file("client.sha256")), ConfigError);
}

// ---------------------------------------------------------------- outgoing (server) side

TEST_CASE("A server certificate for the SRV target from a public CA is accepted", "[tls]")
{
    const auto result = server(*trust(), "server-b", "MX.B.TEST.");
    REQUIRE_ACCEPTED(result);
    CHECK(result.identity->names == std::vector<std::string>{"mx.b.test"});
    CHECK(result.identity->trust == TrustKind::public_ca);
}

TEST_CASE("A server certificate for another name is refused with server_name_mismatch", "[tls]")
{
    const auto result = server(*trust(), "server-b", "mx.c.test");
    CHECK_REFUSED(result, Reason::server_name_mismatch);
    CHECK(result.detail == "certificate names mx.b.test, not mx.c.test");
}

TEST_CASE("A wildcard server certificate covers exactly one label", "[tls]")
{
    const auto store = trust();
    REQUIRE_ACCEPTED(server(*store, "wildcard", "mx.a.test"));
    CHECK_REFUSED(server(*store, "wildcard", "a.test"), Reason::server_name_mismatch);
    CHECK_REFUSED(server(*store, "wildcard", "x.mx.a.test"), Reason::server_name_mismatch);
}

TEST_CASE("An untrusted or expired or wrong-purpose server certificate is refused with server_cert_invalid", "[tls]")
{
    const auto store = trust();
    auto result = server(*store, "other-ca", "mx.a.test");
    CHECK_REFUSED(result, Reason::server_cert_invalid);
    CHECK(result.detail == "unable to get local issuer certificate");

    result = server(*store, "expired", "mx.a.test");
    CHECK_REFUSED(result, Reason::server_cert_invalid);
    CHECK(result.detail == "certificate has expired");

    result = server(*store, "email-only", "mail.a.test");
    CHECK_REFUSED(result, Reason::server_cert_invalid);
    CHECK(result.detail == "extended key usage does not allow TLS server authentication");

    CHECK_REFUSED(store->verify_server(nullptr, "mx.b.test", now()), Reason::server_cert_invalid);
}

TEST_CASE("A server certificate from a private CA is refused on the outgoing side", "[tls]")
{
    CHECK_REFUSED(server(*trust(isp_options()), "private", "host1.customers.isp.test"), Reason::server_cert_invalid);
}

// ---------------------------------------------------------------- a real handshake

namespace {

SslCtxPtr tls_context(const SSL_METHOD* method, const std::string& leaf)
{
    SslCtxPtr ctx(SSL_CTX_new(method));
    REQUIRE(ctx);
    REQUIRE(SSL_CTX_use_certificate_chain_file(ctx.get(), pki_file(leaf + ".chain.pem").c_str()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx.get(), pki_file(leaf + ".key").c_str(), SSL_FILETYPE_PEM) == 1);
    return ctx;
}

struct Handshake {
    SslPtr client;
    SslPtr server;
    bool done = false;
};

// Both ends in memory, over a BIO pair; `resume` offers an earlier client session.
Handshake handshake(SSL_CTX* client_ctx, SSL_CTX* server_ctx, SSL_SESSION* resume = nullptr)
{
    Handshake h{SslPtr(SSL_new(client_ctx)), SslPtr(SSL_new(server_ctx))};
    REQUIRE(h.client);
    REQUIRE(h.server);
    BIO* client_end = nullptr;
    BIO* server_end = nullptr;
    REQUIRE(BIO_new_bio_pair(&client_end, 0, &server_end, 0) == 1);
    SSL_set_bio(h.client.get(), client_end, client_end);  // each SSL owns its end
    SSL_set_bio(h.server.get(), server_end, server_end);
    if (resume)
        REQUIRE(SSL_set_session(h.client.get(), resume) == 1);
    SSL_set_connect_state(h.client.get());
    SSL_set_accept_state(h.server.get());
    for (int round = 0; round < 20 && !h.done; ++round) {
        const int c = SSL_do_handshake(h.client.get());
        const int s = SSL_do_handshake(h.server.get());
        h.done = c == 1 && s == 1;
    }
    ERR_clear_error();
    return h;
}

// One byte from server to client, so that the client takes in the TLS 1.3 session
// ticket that follows the handshake; then a clean close, which keeps it resumable.
void exchange_and_close(Handshake& h)
{
    char byte = 'x';
    REQUIRE(SSL_write(h.server.get(), &byte, 1) == 1);
    REQUIRE(SSL_read(h.client.get(), &byte, 1) == 1);
    SSL_shutdown(h.client.get());
    SSL_shutdown(h.server.get());
    SSL_shutdown(h.client.get());
    ERR_clear_error();
}

} // namespace

TEST_CASE("OpenSSL's own verification refuses a serverAuth-only client certificate (the B3 trap)", "[tls]")
{
    const auto store = trust();
    const SslCtxPtr server_ctx = tls_context(TLS_server_method(), "server-b");
    REQUIRE(SSL_CTX_set1_verify_cert_store(server_ctx.get(), store->public_store()) == 1);
    SSL_CTX_set_verify(server_ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    const SslCtxPtr client_ctx = tls_context(TLS_client_method(), "server-only");

    const Handshake h = handshake(client_ctx.get(), server_ctx.get());
    CHECK_FALSE(h.done);
    CHECK(SSL_get_verify_result(h.server.get()) == X509_V_ERR_INVALID_PURPOSE);
}

TEST_CASE("A serverAuth-only client certificate passes a real handshake when the TrustStore decides", "[tls]")
{
    const auto store = trust();
    const SslCtxPtr server_ctx = tls_context(TLS_server_method(), "server-b");
    // Ask for a certificate, let libssl accept whatever comes, and decide afterwards.
    SSL_CTX_set_verify(server_ctx.get(), SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
    const SslCtxPtr client_ctx = tls_context(TLS_client_method(), "server-only");

    const Handshake h = handshake(client_ctx.get(), server_ctx.get());
    REQUIRE(h.done);

    const X509StackPtr from_client = peer_certificate_chain(h.server.get());
    REQUIRE(sk_X509_num(from_client.get()) == 2);  // the leaf put back in front
    const auto result = store->verify_client(from_client.get(), ListenerKind::public_network, public_peer, now());
    REQUIRE_ACCEPTED(result);
    CHECK(result.identity->names == std::vector<std::string>{"mx.c.test"});

    const X509StackPtr from_server = peer_certificate_chain(h.client.get());
    REQUIRE(sk_X509_num(from_server.get()) == 2);  // the leaf not doubled
    REQUIRE_ACCEPTED(store->verify_server(from_server.get(), "mx.b.test", now()));
}

TEST_CASE("A client that sends no certificate in a real handshake is refused with no_client_cert", "[tls]")
{
    const SslCtxPtr server_ctx = tls_context(TLS_server_method(), "server-b");
    SSL_CTX_set_verify(server_ctx.get(), SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
    const SslCtxPtr client_ctx(SSL_CTX_new(TLS_client_method()));
    const Handshake h = handshake(client_ctx.get(), server_ctx.get());
    REQUIRE(h.done);
    const X509StackPtr from_client = peer_certificate_chain(h.server.get());
    REQUIRE(from_client);
    CHECK_REFUSED(trust()->verify_client(from_client.get(), ListenerKind::public_network, public_peer, now()),
                  Reason::no_client_cert);
}

TEST_CASE("A resumed TLS session brings only the client's leaf so hosts must verify on full handshakes", "[tls]")
{
    // OpenSSL keeps the peer's leaf in a session, not its chain. A host that resumes
    // sessions and calls verify_client again would see an intermediate-issued client
    // as untrusted_issuer: it must not resume AMTP sessions (or keep the identity
    // decided on the full handshake).
    const auto store = trust();
    const SslCtxPtr server_ctx = tls_context(TLS_server_method(), "server-b");
    SSL_CTX_set_verify(server_ctx.get(), SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
    static const unsigned char context_id[] = "amtp-test";
    REQUIRE(SSL_CTX_set_session_id_context(server_ctx.get(), context_id, sizeof context_id - 1) == 1);
    const SslCtxPtr client_ctx = tls_context(TLS_client_method(), "client");

    Handshake first = handshake(client_ctx.get(), server_ctx.get());
    REQUIRE(first.done);
    REQUIRE_FALSE(SSL_session_reused(first.server.get()));
    REQUIRE_ACCEPTED(store->verify_client(peer_certificate_chain(first.server.get()).get(),
                                          ListenerKind::public_network, public_peer, now()));
    exchange_and_close(first);

    const Handshake second = handshake(client_ctx.get(), server_ctx.get(), SSL_get_session(first.client.get()));
    REQUIRE(second.done);
    REQUIRE(SSL_session_reused(second.server.get()));
    const X509StackPtr chain = peer_certificate_chain(second.server.get());
    CHECK(sk_X509_num(chain.get()) == 1);
    CHECK_REFUSED(store->verify_client(chain.get(), ListenerKind::public_network, public_peer, now()),
                  Reason::untrusted_issuer);
}
