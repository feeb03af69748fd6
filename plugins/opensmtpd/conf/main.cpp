// amtp-opensmtpd-conf: writes smtpd.conf for an AMTP site from the shared INI file:
// the loopback proxy-v2 listener the gate relays to, the AMTP filter on it, and
// Maildir delivery of delivery.local-domain to delivery.maildir-root/<domain>/<local>/
// through amtp-opensmtpd-deliver (the same layout and form amtpd writes). With
// --prepare-maildir it also creates the Maildir root and hands it to the mail user.
#include "amtp/address.hpp"
#include "amtp/errors.hpp"
#include "amtp/settings.hpp"

#include <boost/program_options.hpp>

#include <pwd.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace po = boost::program_options;
using namespace amtp;

namespace {

// Inside smtpd.conf's double quotes and the mda's sh -c: refuse what would need
// escaping rather than escape it.
std::string checked_path(const std::string& p, const std::string& what)
{
    for (char c : p)
        if (c == '"' || c == '\'' || c == '\\' || c == '\n' || c == '$' || c == '`' || static_cast<unsigned char>(c) < 0x20)
            throw ConfigError(what + ": unsupported character in path " + p);
    return p;
}

} // namespace

int main(int argc, char** argv)
{
    std::string config, smtpd, socket_path, filter, deliver, mail_user, out, notices;
    bool prepare = false;
    std::string print;
    po::options_description opts("amtp-opensmtpd-conf options");
    opts.add_options()("help,h", "this help")("config,c", po::value(&config)->required(), "the shared AMTP INI file")(
        "smtpd", po::value(&smtpd)->default_value("127.0.0.1:10026"), "loopback ADDRESS:PORT for smtpd's proxy-v2 listener")(
        "socket", po::value(&socket_path)->required(), "the gate's identity socket (given to the filter)")(
        "filter", po::value(&filter)->default_value(AMTP_OPENSMTPD_LIBEXEC "/amtp-opensmtpd-filter"),
        "path of amtp-opensmtpd-filter")(
        "deliver", po::value(&deliver)->default_value(AMTP_OPENSMTPD_LIBEXEC "/amtp-opensmtpd-deliver"),
        "path of amtp-opensmtpd-deliver")(
        "delivery-notices", po::value(&notices), "abstract socket name the mda reports deliveries to (the gate's)")(
        "mail-user", po::value(&mail_user)->default_value("amtpmail"), "system user that owns the Maildirs")(
        "prepare-maildir", po::bool_switch(&prepare), "create delivery.maildir-root and give it to the mail user")(
        "print", po::value(&print), "print one setting and nothing else: maildir-root or queue-directory")(
        "output,o", po::value(&out), "file to write (default: standard output)");
    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, opts), vm);
        if (vm.count("help")) {
            std::cout << opts;
            return 0;
        }
        po::notify(vm);
    } catch (const std::exception& e) {
        std::cerr << "amtp-opensmtpd-conf: " << e.what() << "\n" << opts;
        return EX_USAGE;
    }
    try {
        const Settings s = load_settings(config);
        const auto listen = Endpoint::parse(smtpd);
        if (!listen || !listen->address.is_loopback())
            throw ConfigError("--smtpd: a loopback ADDRESS:PORT is required: " + smtpd);
        if (s.delivery.local_domains.empty())
            throw ConfigError(s.source, 0, "delivery.local-domain", "OpenSMTPD delivers only to local domains: set one");
        const passwd* pw = ::getpwnam(mail_user.c_str());
        if (!pw)
            throw ConfigError("--mail-user: no such user " + mail_user + " (plugins/opensmtpd/install-deps creates it)");
        const std::string root = checked_path(s.delivery.maildir_root, "delivery.maildir-root");
        if (print == "maildir-root" || print == "queue-directory") {
            std::cout << (print == "maildir-root" ? root : checked_path(s.queue.directory, "queue.directory")) << "\n";
            return 0;
        }
        if (!print.empty())
            throw ConfigError("--print: maildir-root or queue-directory, not " + print);
        if (prepare) {
            // The filter (smtpd's user, not the mail user) checks at RCPT that a mailbox
            // exists (delivery.recipients): it may pass through the root and the domain
            // directories, never list them; the mailboxes themselves stay 0700.
            std::filesystem::create_directories(root);
            if (::chown(root.c_str(), pw->pw_uid, pw->pw_gid) != 0 || ::chmod(root.c_str(), 0751) != 0)
                throw ConfigError(s.source, 0, "delivery.maildir-root", "cannot hand " + root + " to " + mail_user);
            for (const auto& domain : s.delivery.local_domains) {
                const std::string d = root + "/" + domain;
                std::filesystem::create_directories(d);
                if (::chown(d.c_str(), pw->pw_uid, pw->pw_gid) != 0 || ::chmod(d.c_str(), 0711) != 0)
                    throw ConfigError(s.source, 0, "delivery.maildir-root", "cannot hand " + d + " to " + mail_user);
            }
        }
        std::ostringstream c;
        c << "# Written by amtp-opensmtpd-conf from " << s.source << ": rerun it rather than edit.\n"
          << "# The AMTP gate (amtp-opensmtpd-gate) owns the public and private AMTP listeners and\n"
          << "# relays each verified session here with a PROXY v2 header.\n\n"
          // smtpd's limit stays above ours, so the filter (amtpd's rule and reply) decides.
          << "smtp max-message-size " << (s.limits.max_message_size + 256 * 1024) << "\n\n"
          << "table amtp_users { \"" << mail_user << "\" = \"" << pw->pw_uid << ":" << pw->pw_gid
          << ":/nonexistent\" }\n"
          << "# Every local part of a local domain goes to the mail user; the filter has already\n"
          << "# refused recipients without a mailbox at RCPT (delivery.recipients, as in amtpd).\n"
          << "table amtp_mailboxes { \"@\" = \"" << mail_user << "\" }\n\n"
          << "filter \"amtp\" proc-exec \"" << checked_path(filter, "--filter") << " --socket "
          << checked_path(socket_path, "--socket") << "\"\n\n"
          << "listen on " << listen->address.str() << " port " << listen->port << " proxy-v2 filter \"amtp\" hostname "
          << s.hostname << "\n\n"
          << "action \"amtp_maildir\" mda \"" << checked_path(deliver, "--deliver") << " --recipients '"
          << checked_path(s.delivery.recipients, "delivery.recipients") << "' '" << root << "'"
          << (notices.empty() ? "" : " " + checked_path(notices, "--delivery-notices")) << "\" virtual <amtp_mailboxes> userbase <amtp_users>\n";
        for (const auto& d : s.delivery.local_domains)
            c << "match from any for domain \"" << d << "\" action \"amtp_maildir\"\n";
        if (out.empty()) {
            std::cout << c.str();
        } else {
            std::ofstream f(out);
            f << c.str();
            if (!f)
                throw ConfigError(out + ": cannot write");
        }
        return 0;
    } catch (const ConfigError& e) {
        std::cerr << "amtp-opensmtpd-conf: " << e.what() << "\n";
        return EX_CONFIG;
    } catch (const std::exception& e) {
        std::cerr << "amtp-opensmtpd-conf: " << e.what() << "\n";
        return EX_SOFTWARE;
    }
}
