// Runtime settings shared by every front-end (profile B8): one INI file read with
// Boost.Program_options. One table declares every option (name, type, default, help);
// the parser, --help, --check-config, docs/CONFIGURATION.md and amtp.ini(5) all come from it.
// The defaults written below are the table's defaults (a unit test keeps them equal),
// so a default-constructed Settings behaves like a file that sets nothing but hostname.
#pragma once

#include "amtp/address.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace amtp {

struct Limits {
    std::uint64_t max_message_size = 25 * 1024 * 1024;
    unsigned max_recipients = 100;
    std::chrono::seconds command_timeout{300};
    std::chrono::seconds data_timeout{600};
    unsigned max_errors = 10;
    unsigned max_connections = 1000;
    unsigned max_connections_per_ip = 20;
    unsigned ipv6_prefix_length = 64;
};

// The client a connection counts against for limits.max-connections-per-ip: its IPv4
// address, or its IPv6 address cut to limits.ipv6-prefix-length (a host that holds a
// /64 must not get 2^64 times the limit).
IpAddress connection_limit_key(const Limits& limits, const IpAddress& peer);

struct Settings {
    std::string source;                  // the file read, for messages
    std::string hostname;

    struct Listen {
        std::vector<Endpoint> public_endpoints;   // listen.public
        std::vector<Endpoint> private_endpoints;  // listen.private
        bool starttls = false;                    // listen.starttls (profile B1)
        bool header_carrier = true;               // listen.header-carrier (profile B5)
    } listen;

    struct Tls {
        std::string certificate;
        std::string key;
        std::vector<std::string> trusted_ca;
        std::vector<std::string> private_ca;
        std::string crl;
        bool require_client_eku = false;
        std::string min_version = "1.2";
        std::string ticket_keys;                  // tls.ticket-keys: empty, per-process random keys
    } tls;

    struct Dns {
        std::string resolver;                     // addr@port; empty: resolv.conf
        bool forward_confirm = false;
        std::chrono::milliseconds timeout{5000};
        std::string trust_anchor;
        std::vector<std::string> nodefault_zones; // normalised, with the trailing dot ("test.")
    } dns;

    struct Delivery {
        std::vector<std::string> local_domains;   // normalised
        std::string maildir_root = "/var/mail/amtp";
        std::string lmtp;                         // unix:/path or host:port
        std::string recipients = "mailbox";       // mailbox, any or file:/absolute/path
    } delivery;

    struct PolicyFile {
        std::string file;
    } policy;

    struct Client {
        std::string source;                       // source address for outgoing AMTP
        std::uint16_t port = 26;                  // used when SRV is not consulted (tests)
    } client;

    struct Queue {
        std::string directory = "/var/spool/amtp";
        std::vector<std::chrono::seconds> retry_schedule{std::chrono::minutes(5), std::chrono::minutes(15),
                                                         std::chrono::minutes(30), std::chrono::hours(1),
                                                         std::chrono::hours(2), std::chrono::hours(4)};
        std::chrono::seconds max_age{5 * 24 * 3600};
        std::chrono::seconds attempt_timeout{15 * 60};   // one delivery attempt, all steps
    } queue;

    Limits limits;
    std::string user;                             // drop privileges to this user after binding
};

struct OptionSpec {
    const char* name;        // "section.key" or "key" for the top section
    const char* type;        // fqdn, host, zone, user, bool, count, port, size, duration,
                             // durations, endpoint, address, resolver, path, lmtp, tls-version
                             // (each explained in the "Value types" part of settings_markdown())
    const char* default_value; // "" for none
    bool repeatable;
    bool required;
    const char* help;
};

const std::vector<OptionSpec>& option_table();

// Reads and checks a file. Throws ConfigError(file, line, key, message) on an unknown
// key, a bad value, a missing required key, or a syntax error.
Settings load_settings(const std::string& path);
Settings load_settings_string(const std::string& text, const std::string& source_name);

// Paths in the settings (tls.*, dns.trust-anchor, policy.file, delivery.maildir-root,
// delivery.lmtp's unix: socket, queue.directory) are made absolute: a relative one is
// taken from the configuration file's directory (for load_settings_string, the
// directory of source_name). Files are not opened here; the modules using them do that.

std::string settings_help();       // for --help
std::string settings_markdown();   // docs/CONFIGURATION.md, generated
std::string settings_man();        // man/amtp.ini.5 (man(7) roff), generated from the same table and texts
std::string describe_settings(const Settings& settings); // for --check-config: effective values

} // namespace amtp
