// trust_options: the settings file's trust and the policy's private networks become
// the one TrustOptions every host loads its TrustStore from.
#include "amtp/settings.hpp"
#include "amtp/trust_options.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace amtp;

TEST_CASE("Trust options take the tls settings and the policy's private networks as they are", "[trust]")
{
    const Settings s = load_settings_string("hostname = b.test\n"
                                            "[tls]\n"
                                            "trusted-ca = /etc/amtp/public-1.pem\n"
                                            "trusted-ca = /etc/amtp/public-2.pem\n"
                                            "private-ca = /etc/amtp/private.pem\n"
                                            "crl = /etc/amtp/crl.pem\n"
                                            "require-client-eku = on\n",
                                            "/etc/amtp/amtpd.ini");
    PrivateNetwork isp;
    isp.name = "isp";
    isp.ca_files = {"/etc/amtp/isp-ca.pem"};
    isp.pins = {PinnedCertificate{std::string(64, 'a'), {*IpNetwork::parse("192.0.2.0/24")}}};

    const TrustOptions t = trust_options(s, {isp});
    CHECK(t.public_ca_files == std::vector<std::string>{"/etc/amtp/public-1.pem", "/etc/amtp/public-2.pem"});
    CHECK(t.private_ca_files == std::vector<std::string>{"/etc/amtp/private.pem"});
    CHECK(t.crl_file == "/etc/amtp/crl.pem");
    CHECK(t.require_client_eku);
    REQUIRE(t.private_networks.size() == 1);
    CHECK(t.private_networks[0].name == "isp");
    CHECK(t.private_networks[0].ca_files == std::vector<std::string>{"/etc/amtp/isp-ca.pem"});
    REQUIRE(t.private_networks[0].pins.size() == 1);
    CHECK(t.private_networks[0].pins[0].sha256 == std::string(64, 'a'));
    REQUIRE(t.private_networks[0].pins[0].from.size() == 1);
    CHECK(t.private_networks[0].pins[0].from[0].str() == "192.0.2.0/24");
}

TEST_CASE("Without trust settings nothing is trusted: no CA, no CRL, no private network", "[trust]")
{
    const TrustOptions t = trust_options(load_settings_string("hostname = b.test\n", "amtpd.ini"), {});
    CHECK(t.public_ca_files.empty());
    CHECK(t.private_ca_files.empty());
    CHECK(t.crl_file.empty());
    CHECK_FALSE(t.require_client_eku);
    CHECK(t.private_networks.empty());
}
