// amtp-config: the command-line face of the option table (profile B8). Operators check
// a file before reloading a server; docs/CONFIGURATION.md and man/amtp.ini.5 are
// regenerated with it.
// Exit codes follow sysexits(3): 0, EX_USAGE (64) for a bad command line, EX_CONFIG
// (78) for a configuration that cannot be used.
// It also rotates amtpd's TLS session ticket keys (tls.ticket-keys, --new-ticket-key).
#include "amtp/errors.hpp"
#include "amtp/settings.hpp"
#include "amtp/ticket_keys.hpp"

#include <sysexits.h>

#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

void usage(std::ostream& out)
{
    out << "usage: amtp-config --check-config FILE   read FILE as every AMTP program does, print the\n"
           "                                        effective settings, or the first error and exit 78\n"
           "       amtp-config --new-ticket-key FILE put a new TLS session ticket key on top of FILE\n"
           "                                        (tls.ticket-keys), keep the previous one, drop\n"
           "                                        older ones; creates FILE (mode 600) if missing\n"
           "       amtp-config --markdown            print the reference (docs/CONFIGURATION.md)\n"
           "       amtp-config --man                 print the reference as a man page (man/amtp.ini.5)\n"
           "       amtp-config --help                print this and every option of the file\n";
}

int check_config(const std::string& file)
{
    try {
        const auto settings = amtp::load_settings(file);
        // The one file the settings name that is checked here: it is ours, and a bad
        // one keeps amtpd from starting or reloading.
        if (!settings.tls.ticket_keys.empty())
            amtp::read_ticket_keys(settings.tls.ticket_keys);
        std::cout << amtp::describe_settings(settings) << "configuration OK\n";
        return EX_OK;
    } catch (const amtp::ConfigError& e) {
        std::cerr << e.what() << '\n';
        return EX_CONFIG;
    }
}

// A rotation: the new key encrypts on every host once they all have the file and
// have reloaded; the previous key, kept, still decrypts the tickets made before.
int new_ticket_key(const std::string& file)
{
    try {
        const auto r = amtp::rotate_ticket_keys(file, 1);
        if (r.created)
            std::cout << file << ": created with one ticket key (mode 600); it must belong to the user amtpd runs as\n";
        else
            std::cout << file << ": a new ticket key on top, " << r.kept << " older kept, " << r.dropped
                      << " dropped\n";
        std::cout << "copy it to every host serving the domain and reload each amtpd (SIGHUP)\n";
        return EX_OK;
    } catch (const amtp::ConfigError& e) {
        std::cerr << e.what() << '\n';
        return EX_CONFIG;
    } catch (const std::runtime_error& e) {
        std::cerr << file << ": " << e.what() << '\n';
        return EX_SOFTWARE;
    }
}

} // namespace

int main(int argc, char** argv)
{
    const std::vector<std::string> args(argv + 1, argv + argc);
    const std::string check_prefix = "--check-config=";

    if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
        usage(std::cout);
        std::cout << "\nOptions of the configuration file (INI: [section] then key = value):\n"
                  << amtp::settings_help();
        return EX_OK;
    }
    if (args.size() == 1 && args[0] == "--markdown") {
        std::cout << amtp::settings_markdown();
        return std::cout.flush() ? EX_OK : EX_IOERR;
    }
    if (args.size() == 1 && args[0] == "--man") {
        std::cout << amtp::settings_man();
        return std::cout.flush() ? EX_OK : EX_IOERR;
    }
    if (args.size() == 2 && args[0] == "--new-ticket-key")
        return new_ticket_key(args[1]);
    if (args.size() == 2 && args[0] == "--check-config")
        return check_config(args[1]);
    if (args.size() == 1 && args[0].compare(0, check_prefix.size(), check_prefix) == 0 &&
        args[0].size() > check_prefix.size())
        return check_config(args[0].substr(check_prefix.size()));

    usage(std::cerr);
    return EX_USAGE;
}
