// amtp-send: deliver one message directly by AMTP, for scripts and for testing any
// AMTP server. Exit status (sysexits): 0 delivered, 75 temporary failure, 69 permanent
// refusal (5xx or an MPC DENY), 65 bad message or MPC, 78 configuration error.
#include "amtp/net/outgoing.hpp"
#include "amtp/net/tls_context.hpp"

#include "amtp/errors.hpp"
#include "amtp/policy.hpp"
#include "amtp/rulebook.hpp"
#include "amtp/settings.hpp"
#include "amtp/smtp_syntax.hpp"
#include "amtp/trust_options.hpp"

#include <boost/program_options.hpp>

#include <sysexits.h>

#include <iostream>
#include <iterator>
#include <map>

namespace po = boost::program_options;
using namespace amtp;

int main(int argc, char** argv)
{
    po::options_description cli("usage: amtp-send -c FILE [--mpc role/class] -f SENDER RCPT... < message");
    cli.add_options()
        ("help,h", "show this help")
        ("config,c", po::value<std::string>()->default_value("/etc/amtp/amtp.ini"), "configuration file")
        ("mpc,m", po::value<std::string>(), "Mail Policy Code (default: the sender's <sender> policy entry)")
        ("from,f", po::value<std::string>(), "envelope sender (\"\" for a bounce)")
        ("verbose,v", "log every decision to stderr")
        ("rcpt", po::value<std::vector<std::string>>(), "recipients");
    po::positional_options_description positional;
    positional.add("rcpt", -1);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(cli).positional(positional).run(), vm);
        po::notify(vm);
    } catch (const std::exception& e) {
        std::cerr << "amtp-send: " << e.what() << "\n";
        return EX_USAGE;
    }
    if (vm.count("help")) {
        std::cout << cli;
        return 0;
    }
    if (!vm.count("from") || !vm.count("rcpt")) {
        std::cerr << "amtp-send: a sender (-f) and at least one recipient are required\n";
        return EX_USAGE;
    }
    const LogSink log = vm.count("verbose") ? LogSink([](const std::string& l) { std::cerr << "amtp-send " << l << "\n"; })
                                            : LogSink();
    try {
        const Settings settings = load_settings(vm["config"].as<std::string>());
        const Policy policy = settings.policy.file.empty() ? Policy{} : Policy::load_file(settings.policy.file);

        OutgoingMessage message;
        message.sender = vm["from"].as<std::string>();
        if (!message.sender.empty() && !parse_mailbox(message.sender)) {
            std::cerr << "amtp-send: bad sender address " << printable(message.sender) << "\n";
            return EX_DATAERR;
        }
        const OutgoingMpc mpc =
            outgoing_mpc(&policy, vm.count("mpc") ? vm["mpc"].as<std::string>() : std::string(), message.sender);
        if (mpc.reason != Reason::none) {
            std::cerr << "amtp-send: bad MPC value: " << reason_name(mpc.reason) << "\n";
            return EX_DATAERR;
        }
        if (!mpc.value) {
            std::cerr << "amtp-send: no MPC: give --mpc or a <sender> entry in the policy file\n";
            return EX_DATAERR;
        }
        message.mpc = *mpc.value;
        message.data.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());

        std::map<std::string, std::vector<std::string>> by_domain;
        for (const auto& r : vm["rcpt"].as<std::vector<std::string>>()) {
            const auto box = parse_mailbox(r);
            if (!box) {
                std::cerr << "amtp-send: bad recipient address " << printable(r) << "\n";
                return EX_DATAERR;
            }
            by_domain[box->domain].push_back(r);
        }

        Resolver resolver(resolver_options(settings));
        const auto trust = TrustStore::load(trust_options(settings, policy.private_networks));
        const SslCtxPtr tls = net::make_client_context(settings);

        int status = 0;
        for (const auto& [domain, recipients] : by_domain) {
            OutgoingMessage m = message;
            m.recipients = recipients;
            const net::DomainDelivery d = net::deliver_to_domain(settings, resolver, *trust, tls.get(), m, domain, log);
            for (const auto& o : d.outcomes) {
                const char* what = o.status == RecipientStatus::delivered   ? "delivered"
                                   : o.status == RecipientStatus::temporary ? "deferred"
                                                                            : "refused";
                std::cerr << o.recipient << ": " << what << ": " << printable(o.reply.wire().substr(0, o.reply.wire().find('\r')))
                          << (d.server.empty() ? "" : " (" + d.server + ")") << "\n";
                if (o.status == RecipientStatus::permanent)
                    status = EX_UNAVAILABLE;
                else if (o.status == RecipientStatus::temporary && status == 0)
                    status = EX_TEMPFAIL;
            }
        }
        return status;
    } catch (const ConfigError& e) {
        std::cerr << "amtp-send: " << e.what() << "\n";
        return EX_CONFIG;
    } catch (const std::exception& e) {
        std::cerr << "amtp-send: " << e.what() << "\n";
        return EX_TEMPFAIL;
    }
}
