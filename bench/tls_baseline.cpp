// The bare mutual-TLS baseline: accept, complete a TLS handshake that requires and
// verifies a client certificate (OpenSSL's own chain check against the same CA),
// close. Same certificates, same curves and ciphers as amtpd, one Asio loop like
// amtpd: what the machine can do before any AMTP work.
//   tls-baseline CONFIG ADDRESS:PORT           full handshakes only, no tickets
//   tls-baseline CONFIG ADDRESS:PORT tickets   TLS 1.3 session tickets made and taken
// exactly as amtpd's public listener does (make_server_context's bound_tickets: one
// stateless ticket per handshake, renewed at every resumption, no session cache, the
// resumed handshake still an ECDHE exchange, psk_dhe_ke: OpenSSL accepts psk_ke only
// with SSL_OP_ALLOW_NO_DHE_KEX, which neither sets), but with no identity in the
// ticket: the bare cost of resumption, the baseline of figure 1b.
#include "amtp/settings.hpp"
#include "amtp/net/tls_context.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <iostream>
#include <memory>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

void accept(tcp::acceptor& acceptor, asio::ssl::context& ctx)
{
    acceptor.async_accept([&acceptor, &ctx](const boost::system::error_code& ec, tcp::socket socket) {
        if (!ec) {
            auto stream = std::make_shared<asio::ssl::stream<tcp::socket>>(std::move(socket), ctx);
            stream->async_handshake(asio::ssl::stream_base::server, [stream](const boost::system::error_code&) {
                boost::system::error_code ignored;
                stream->lowest_layer().close(ignored);
            });
        }
        accept(acceptor, ctx);
    });
}

} // namespace

int main(int argc, char** argv)
{
    const bool tickets = argc == 4 && std::string(argv[3]) == "tickets";
    if (argc != 3 && !tickets) {
        std::cerr << "usage: tls-baseline CONFIG ADDRESS:PORT [tickets]\n";
        return 64;
    }
    try {
        const amtp::Settings s = amtp::load_settings(argv[1]);
        // Without "tickets", full handshakes only: what every new peer costs. With it,
        // amtpd's ticket settings; no TicketBinding is attached, so a ticket carries
        // no identity and a resumed session is taken as OpenSSL finds it.
        asio::ssl::context ctx(amtp::net::make_server_context(s, amtp::ListenerKind::public_network,
                                                              tickets ? amtp::net::Resumption::bound_tickets
                                                                      : amtp::net::Resumption::off)
                                   .release());
        // Unlike amtpd, OpenSSL verifies the chain itself and requires a certificate.
        for (const auto& ca : s.tls.trusted_ca)
            ctx.load_verify_file(ca);
        ctx.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
        SSL_CTX_set_verify(ctx.native_handle(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        const std::string where = argv[2];
        const auto colon = where.rfind(':');
        asio::io_context io;
        tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address(where.substr(0, colon)),
                                                 static_cast<unsigned short>(std::stoi(where.substr(colon + 1)))));
        accept(acceptor, ctx);
        std::cout << "ready" << std::endl;
        io.run();
    } catch (const std::exception& e) {
        std::cerr << "tls-baseline: " << e.what() << "\n";
        return 1;
    }
}
