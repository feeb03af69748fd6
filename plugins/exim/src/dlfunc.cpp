// Exim's side of the adapter: the ${dlfunc} entry points the ACLs call. Each one reads
// its expanded arguments, asks exim_module.hpp's stages (the core's rulebook), writes
// one log line through Exim's log_write and returns a verdict string. Per the dlfunc
// rules every entry point returns OK with a string: a non-OK return would show the
// client only "451 Temporary local problem", so the ACL branches on the verdict's
// first digit (2 accept, 4 defer, 5 deny) and uses it as `message =`.
#include "exim_module.hpp"

#include "amtp/errors.hpp"
#include "amtp/log.hpp"

#include <openssl/crypto.h>
#include <pthread.h>
#include <unistd.h>

#include <ctime>
#include <exception>
#include <memory>
#include <string>

extern "C" {
#define DLFUNC_IMPL
#include <local_scan.h>
}

namespace {

using namespace amtp;
using namespace amtp::exim;

// State of this process. The daemon loads the configuration once (amtp_init, from an
// option it expands for every connection); each forked reception process inherits it
// and keeps its own Connection and resolver.
struct ProcessState {
    std::shared_ptr<const Site> site;
    std::string site_path;                 // the file it was loaded from
    std::string site_error;
    Connection connection;
    std::vector<Route::Hop> hops;          // client side: where the router sent domains
    std::vector<std::string> server_chain; // client side: the server's chain (tls:cert)
    std::unique_ptr<Resolver> resolver;  // created in the process that uses it, never in the daemon
};

// Never destroyed: every Exim process that loaded the module would otherwise tear the
// configuration, trust store and resolver down in its exit handlers, touching (and so
// copying) pages it shares with the daemon just before the kernel frees them anyway.
ProcessState& state()
{
    static ProcessState* const s = std::make_unique<ProcessState>().release();
    return *s;
}

// A forked child (Exim forks delivery processes from a reception process) must not
// touch the parent's libunbound context: its resolver thread did not survive the fork,
// and deleting the context would wait for it. The child forgets it (a deliberate leak
// of one object in a short-lived process) and makes its own when it needs one.
void forget_resolver_in_child()
{
    [[maybe_unused]] Resolver* abandoned = state().resolver.release();
}

struct AtForkRegistration {
    AtForkRegistration()
    {
        // At dlopen in the daemon, before anything else uses OpenSSL: no atexit cleanup,
        // for the same reason as state() above (Exim forks a process per connection).
        OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
        pthread_atfork(nullptr, nullptr, forget_resolver_in_child);
    }
};
const AtForkRegistration at_fork_registration;

void log_line(const std::string& line)
{
    log_write(0, LOG_MAIN, "amtp %s", line.c_str());
}

// Loads the configuration once per process (in the daemon, if amtp_init ran there).
const Site* site(const char* path)
{
    ProcessState& s = state();
    if (s.site && s.site_path == path)
        return s.site.get();
    try {
        s.site = Site::load(path, MpcCarrier::header_only);
        s.site_path = path;
        s.site_error.clear();
        LogLine line("init");
        line.kv("config", path).kv("hostname", s.site->settings.hostname).kv("pid", static_cast<long long>(getpid()));
        log_line(line.str());
        return s.site.get();
    } catch (const std::exception& e) {
        s.site_error = e.what();
        LogLine line("init");
        line.kv("config", path).kv("result", "fail").kv("error", e.what());
        log_line(line.str());
        return nullptr;
    }
}

// The connection this process serves; a new process (after fork) starts afresh.
Connection& connection()
{
    ProcessState& s = state();
    const pid_t pid = getpid();
    if (s.connection.pid != pid) {
        s.connection = Connection{};
        s.connection.pid = pid;
        s.connection.facts.session_id = "exim-" + std::to_string(static_cast<long long>(std::time(nullptr))) + "-" +
                          std::to_string(static_cast<long long>(pid));
    }
    return s.connection;
}

Resolver& resolver(const Site& site)
{
    ProcessState& s = state();
    if (!s.resolver)
        s.resolver = std::make_unique<Resolver>(resolver_options(site.settings));
    return *s.resolver;
}

std::string arg(int argc, uschar* argv[], int i)
{
    return (i < argc && argv[i]) ? std::string(reinterpret_cast<const char*>(argv[i])) : std::string();
}

// The whole argv, for the readers of arguments.cpp.
Arguments arguments(int argc, uschar* argv[])
{
    Arguments args;
    for (int i = 0; i < argc; ++i)
        args.push_back(arg(argc, argv, i));
    return args;
}

int yield_string(uschar** yield, const std::string& text, bool tainted = false)
{
    const auto* p = reinterpret_cast<const uschar*>(text.c_str());
    *yield = tainted ? string_copy_taint(p, GET_TAINTED) : string_copy(p);
    return OK;
}

// When the module cannot work (configuration unusable, a bug), the client gets a
// temporary refusal: mail waits rather than being judged without the rules.
int unavailable(uschar** yield, const std::string& why)
{
    LogLine line("error");
    line.kv("result", "fail").kv("reason", reason_name(Reason::storage_temporary)).kv("error", why);
    log_line(line.str());
    return yield_string(yield, acl_text(reply_for(Reason::storage_temporary)));
}

int verdict(uschar** yield, const Decision& d)
{
    log_line(d.log);
    return yield_string(yield, acl_text(d.reply));
}

template <typename F>
int guarded(uschar** yield, F&& body)
{
    try {
        return body();
    } catch (const std::exception& e) {
        return unavailable(yield, e.what());
    }
}

} // namespace

// The module is built with hidden visibility; only the entry points are exported.
#define AMTP_EXIM_ENTRY __attribute__((visibility("default"))) int

extern "C" {

// ${dlfunc{SO}{amtp_init}{CONFIG}}: loads the configuration in the daemon (expanded by
// smtp_accept_max_per_host) and yields limits.max-connections-per-ip.
AMTP_EXIM_ENTRY amtp_init(uschar** yield, int argc, uschar* argv[])
{
    return guarded(yield, [&] {
        const Site* s = site(arg(argc, argv, 0).c_str());
        // An empty result means "no limit" to Exim; an unusable configuration is
        // reported by every ACL call instead.
        return yield_string(yield, s ? std::to_string(s->settings.limits.max_connections_per_ip) : std::string());
    });
}

// event_action on tls:cert: ${dlfunc{SO}{amtp_cert}{CONFIG}{$event_data}{BASE64-DER}}.
// Records one certificate of the chain the client sent; yields "" (anything else would
// make Exim reject the certificate: the decision belongs to the EHLO check).
AMTP_EXIM_ENTRY amtp_cert(uschar** yield, int argc, uschar* argv[])
{
    return guarded(yield, [&] {
        if (const auto depth = certificate_depth(arg(argc, argv, 1)))
            record_certificate(connection(), *depth, base64_der(arg(argc, argv, 2)));
        return yield_string(yield, "");
    });
}

// acl_smtp_helo: ${dlfunc{SO}{amtp_ehlo}{CONFIG}{$smtp_command}{$sender_host_address}
//   {$received_ip_address}{$received_port}{$tls_in_cipher}{BASE64-DER or empty}}
AMTP_EXIM_ENTRY amtp_ehlo(uschar** yield, int argc, uschar* argv[])
{
    return guarded(yield, [&] {
        const Site* s = site(arg(argc, argv, 0).c_str());
        if (!s)
            return unavailable(yield, state().site_error);
        const EhloInput in = ehlo_input(arguments(argc, argv), std::time(nullptr));
        const Site& site_ref = *s;
        auto lookup = [&site_ref](const IpAddress& a) {
            return lookup_client_names_blocking(resolver(site_ref), a, site_ref.settings.dns.forward_confirm);
        };
        return verdict(yield, acl_ehlo(*s, connection(), in, lookup));
    });
}

// acl_smtp_mail: ${dlfunc{SO}{amtp_mail}{CONFIG}{$smtp_command}}
AMTP_EXIM_ENTRY amtp_mail(uschar** yield, int argc, uschar* argv[])
{
    return guarded(yield, [&] {
        const Site* s = site(arg(argc, argv, 0).c_str());
        if (!s)
            return unavailable(yield, state().site_error);
        return verdict(yield, acl_mail(*s, connection(), arg(argc, argv, 1)));
    });
}

// acl_smtp_rcpt: ${dlfunc{SO}{amtp_rcpt}{CONFIG}{$smtp_command}}
AMTP_EXIM_ENTRY amtp_rcpt(uschar** yield, int argc, uschar* argv[])
{
    return guarded(yield, [&] {
        const Site* s = site(arg(argc, argv, 0).c_str());
        if (!s)
            return unavailable(yield, state().site_error);
        return verdict(yield, acl_rcpt(*s, connection(), arg(argc, argv, 1)));
    });
}

// acl_smtp_data: ${dlfunc{SO}{amtp_data}{CONFIG}{$message_headers_raw}{$recipients}
//   {$sender_address}{$tls_in_ver}{$tls_in_cipher}{$message_size}}
AMTP_EXIM_ENTRY amtp_data(uschar** yield, int argc, uschar* argv[])
{
    return guarded(yield, [&] {
        const Site* s = site(arg(argc, argv, 0).c_str());
        if (!s)
            return unavailable(yield, state().site_error);
        return verdict(yield, acl_data(*s, connection(), data_input(arguments(argc, argv), std::time(nullptr))));
    });
}

// add_header in acl_smtp_data after an accepting amtp_data:
// ${dlfunc{SO}{amtp_trace}{CONFIG}{received|authentication-results|mpc}} yields that
// one field (LF line ends, peer text tainted). One field per add_header, because Exim
// applies :at_start: to the first line of an add_header only. {remove} yields the
// remove_header list (our own names, untainted).
AMTP_EXIM_ENTRY amtp_trace(uschar** yield, int argc, uschar* argv[])
{
    return guarded(yield, [&] {
        const std::string which = arg(argc, argv, 1);
        return yield_string(yield, trace_field(connection(), which), which != "remove");
    });
}

// Router local_parts: ${dlfunc{SO}{amtp_local_part}{CONFIG}{$local_part}} yields the
// local part when it is safe as a Maildir directory name (the core's rule), else "".
// The result is an untainted copy, so Exim may use it in the transport's path.
AMTP_EXIM_ENTRY amtp_local_part(uschar** yield, int argc, uschar* argv[])
{
    return guarded(yield, [&] {
        const auto safe = route_local_part(arg(argc, argv, 1));
        if (!safe) {
            LogLine line("route");
            line.kv("result", "fail").kv("reason", reason_name(Reason::bad_local_part)).kv("local_part", arg(argc, argv, 1));
            log_line(line.str());
        }
        return yield_string(yield, safe.value_or(std::string()));
    });
}

// --- Exim as an AMTP client ------------------------------------------------------

// manualroute route_data: ${dlfunc{SO}{amtp_route}{CONFIG}{$domain}} yields the host list
// from SRV _amtp._tcp.<domain> ("ip::port:ip::port"). No SRV record: "" (the router
// declines: no MX or A fallback, the address bounces). A temporary DNS failure is an
// expansion error, which makes Exim defer the address and retry.
AMTP_EXIM_ENTRY amtp_route(uschar** yield, int argc, uschar* argv[])
{
    return guarded(yield, [&]() -> int {
        const Site* s = site(arg(argc, argv, 0).c_str());
        if (!s) {
            *yield = string_copy(reinterpret_cast<const uschar*>("amtp: configuration unusable"));
            return ERROR;
        }
        const std::string domain = arg(argc, argv, 1);
        Resolver& r = resolver(*s);
        const Route route = route_domain(
            domain, [&r](const std::string& d) { return r.srv(d); },
            [&r](const std::string& n) { return r.addresses(n); });
        LogLine line("route");
        line.kv("domain", domain).kv("dns", dns_status_name(route.status)).kv("hosts", route.hosts);
        if (route.status == DnsStatus::answer) {
            line.kv("result", "pass").kv("reason", "none");
            log_line(line.str());
            auto& hops = state().hops;
            hops.insert(hops.end(), route.hops.begin(), route.hops.end());
            return yield_string(yield, route.hosts);
        }
        const Reason reason = route.status == DnsStatus::negative ? Reason::srv_missing : Reason::dns_temporary;
        line.kv("result", "fail").kv("reason", reason_name(reason)).kv("error", route.error);
        log_line(line.str());
        if (reason == Reason::srv_missing)
            return yield_string(yield, "");
        *yield = string_copy(reinterpret_cast<const uschar*>(acl_text(reply_for(reason)).c_str()));
        return ERROR;
    });
}

// tls_sni: ${dlfunc{SO}{amtp_target}{CONFIG}{$host_address}{$host_port}} yields the SRV
// target the router chose for that address.
AMTP_EXIM_ENTRY amtp_target(uschar** yield, int argc, uschar* argv[])
{
    return guarded(yield, [&] {
        const auto ip = IpAddress::parse(arg(argc, argv, 1));
        const unsigned port = number_argument(arg(argc, argv, 2));
        return yield_string(yield, ip ? hop_target(state().hops, *ip, port) : std::string());
    });
}

// The smtp transport's event_action on tls:cert:
// ${dlfunc{SO}{amtp_server_cert}{CONFIG}{$host_address}{$host_port}{$event_data}{BASE64-DER}}
// records the server's chain and, at the leaf (depth 0), checks it against the SRV
// target with the core. Yields "" to go on, a reason to make Exim refuse the server.
AMTP_EXIM_ENTRY amtp_server_cert(uschar** yield, int argc, uschar* argv[])
{
    return guarded(yield, [&] {
        const Site* s = site(arg(argc, argv, 0).c_str());
        if (!s)
            return yield_string(yield, "configuration unusable");
        const auto ip = IpAddress::parse(arg(argc, argv, 1));
        const unsigned port = number_argument(arg(argc, argv, 2));
        const unsigned depth = number_argument(arg(argc, argv, 3));
        auto& chain = state().server_chain;
        if (depth < 16) {
            if (chain.size() <= depth)
                chain.resize(depth + 1);
            chain[depth] = base64_der(arg(argc, argv, 4));
        }
        if (depth != 0)
            return yield_string(yield, "");
        const std::string target = ip ? hop_target(state().hops, *ip, port) : std::string();
        std::vector<std::string> der;
        for (const auto& c : chain)
            if (!c.empty())
                der.push_back(c);
        chain.clear();
        const IdentityResult id = check_server(*s, der, target, std::time(nullptr));
        LogLine line("server-cert");
        line.kv("server", arg(argc, argv, 1) + ":" + arg(argc, argv, 2)).kv("target", target);
        line.kv("result", id.ok() ? "pass" : "fail").kv("reason", reason_name(id.reason));
        if (!id.detail.empty())
            line.kv("detail", id.detail);
        log_line(line.str());
        return yield_string(yield, id.ok() ? std::string() : std::string(reason_name(id.reason)));
    });
}

// headers_add: AMTP-MPC: ${dlfunc{SO}{amtp_outgoing_mpc}{CONFIG}{$h_MPC:}{$sender_address}}
AMTP_EXIM_ENTRY amtp_outgoing_mpc(uschar** yield, int argc, uschar* argv[])
{
    return guarded(yield, [&] {
        const Site* s = site(arg(argc, argv, 0).c_str());
        if (!s)
            return yield_string(yield, ""); // no value: the server refuses (555), nothing is guessed
        return yield_string(yield, outgoing_mpc(*s, arg(argc, argv, 1), arg(argc, argv, 2)));
    });
}

} // extern "C"
