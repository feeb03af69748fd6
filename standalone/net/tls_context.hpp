// OpenSSL contexts for AMTP's mutual TLS, shared by amtpd, amtp-send and the
// OpenSMTPD gate. The TLS layer only asks for and carries certificates; whether a
// peer is who it claims is decided afterwards by the core's TrustStore, so a refusal
// is a precise AMTP reply (504 5.7.1 with a reason) instead of an anonymous alert.
#pragma once

#include "amtp/handles.hpp"
#include "amtp/settings.hpp"
#include "amtp/tls_identity.hpp"

#include <string>

namespace amtp::net {

// TLS 1.2 minimum (settings.tls.min_version may raise it), our certificate chain and
// key, a client certificate requested (not required at the TLS layer), no session
// resumption. Throws ConfigError naming the file or setting.
SslCtxPtr make_server_context(const Settings& settings, ListenerKind listener);

// For outgoing AMTP: our certificate as the client certificate, server verification
// left to TrustStore::verify_server against the SRV target.
SslCtxPtr make_client_context(const Settings& settings);

std::string tls_version(SSL* ssl);
std::string tls_cipher(SSL* ssl);

// The trust settings of the INI file and the policy's private networks together.
TrustOptions trust_options(const Settings& settings, const std::vector<PrivateNetwork>& private_networks);

} // namespace amtp::net
