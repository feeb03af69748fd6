// The AMTP core for Node (node-addon-api): Haraka's plugin asks the same functions
// amtpd uses, so both front-ends decide and word every refusal alike.
//
// Threading: pure decisions (names, MPC, policy, trace fields) run synchronously, they
// are microseconds. Certificate verification and Maildir storage (fsync) run on libuv's
// thread pool through Napi::AsyncWorker. DNS never takes a pool thread: the core's
// libunbound resolver is asynchronous and hands out a descriptor, which this file polls
// with uv_poll on Node's own loop, so 50 slow lookups cost 50 callbacks, not 50 threads.
// Only strings and buffers cross into the core: Node carries its own OpenSSL, so no
// OpenSSL object may travel between Node and the core.
#include <napi.h>
#include <uv.h>

#include "checks.hpp"

#include "amtp/errors.hpp"
#include "amtp/local_delivery.hpp"
#include "amtp/maildir.hpp"
#include "amtp/mpc.hpp"
#include "amtp/names.hpp"
#include "amtp/policy.hpp"
#include "amtp/queue.hpp"
#include "amtp/reply.hpp"
#include "amtp/resolver.hpp"
#include "amtp/reverse_dns.hpp"
#include "amtp/settings.hpp"
#include "amtp/smtp_syntax.hpp"
#include "amtp/tls_identity.hpp"
#include "amtp/trace_headers.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using amtp::Reason;

// --- conversions ---------------------------------------------------------------------

Napi::Object reply_object(Napi::Env env, const amtp::Reply& reply)
{
    Napi::Object o = Napi::Object::New(env);
    o.Set("code", reply.code);
    o.Set("enhanced", reply.enhanced);
    o.Set("text", reply.text);
    o.Set("reason", amtp::reason_name(reply.reason));
    return o;
}

// A refusal as a JavaScript error: message for humans, `code` (the core's reason name)
// and `reply` for programs.
Napi::Error amtp_error(Napi::Env env, Reason reason, const std::string& detail)
{
    const amtp::Reply reply = amtp::reply_for(reason);
    std::string message = std::string(amtp::reason_name(reason)) + ": " + reply.text;
    if (!detail.empty())
        message += " (" + detail + ")";
    Napi::Error error = Napi::Error::New(env, message);
    Napi::Object o = error.Value();
    o.Set("code", amtp::reason_name(reason));
    o.Set("reply", reply_object(env, reply));
    o.Set("detail", detail);
    o.Set("temporary", reply.temporary());
    return error;
}

Napi::Error config_error(Napi::Env env, const amtp::ConfigError& e)
{
    Napi::Error error = Napi::Error::New(env, e.what());
    Napi::Object o = error.Value();
    o.Set("code", "config_error");
    o.Set("file", e.file());
    o.Set("line", e.line());
    o.Set("key", e.key());
    return error;
}

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* what)
{
    if (info.Length() <= i || !info[i].IsString())
        throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
    return info[i].As<Napi::String>().Utf8Value();
}

Napi::Array string_array(Napi::Env env, const std::vector<std::string>& items)
{
    Napi::Array a = Napi::Array::New(env, items.size());
    for (size_t i = 0; i < items.size(); ++i)
        a.Set(static_cast<uint32_t>(i), items[i]);
    return a;
}

std::vector<std::string> strings_from(Napi::Env env, Napi::Value v, const char* what)
{
    if (!v.IsArray())
        throw Napi::TypeError::New(env, std::string(what) + " must be an array of strings");
    Napi::Array a = v.As<Napi::Array>();
    std::vector<std::string> out;
    for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value item = a.Get(i);
        if (!item.IsString())
            throw Napi::TypeError::New(env, std::string(what) + " must be an array of strings");
        out.push_back(item.As<Napi::String>().Utf8Value());
    }
    return out;
}

// Buffers or strings, as bytes.
std::vector<std::string> blobs_from(Napi::Env env, Napi::Value v, const char* what)
{
    if (!v.IsArray())
        throw Napi::TypeError::New(env, std::string(what) + " must be an array of Buffers or strings");
    Napi::Array a = v.As<Napi::Array>();
    std::vector<std::string> out;
    for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value item = a.Get(i);
        if (item.IsBuffer()) {
            auto b = item.As<Napi::Buffer<char>>();
            out.emplace_back(b.Data(), b.Length());
        } else if (item.IsString()) {
            out.push_back(item.As<Napi::String>().Utf8Value());
        } else {
            throw Napi::TypeError::New(env, std::string(what) + " must be an array of Buffers or strings");
        }
    }
    return out;
}

amtp::IpAddress ip_arg(const Napi::CallbackInfo& info, size_t i)
{
    const std::string text = string_arg(info, i, "address");
    const auto ip = amtp::IpAddress::parse(text);
    if (!ip)
        throw Napi::TypeError::New(info.Env(), "not an IP address: " + text);
    return *ip;
}

amtp::MpcValue mpc_arg(const Napi::CallbackInfo& info, size_t i)
{
    const std::string text = string_arg(info, i, "mpc");
    const auto parsed = amtp::parse_mpc(text);
    if (!parsed.value)
        throw amtp_error(info.Env(), parsed.reason, text);
    return *parsed.value;
}

const char* trust_name(amtp::TrustKind t)
{
    switch (t) {
    case amtp::TrustKind::public_ca:
        return "public_ca";
    case amtp::TrustKind::private_ca:
        return "private_ca";
    case amtp::TrustKind::pinned:
        return "pinned";
    }
    return "public_ca";
}

Napi::Object identity_object(Napi::Env env, const amtp::Identity& id)
{
    Napi::Object o = Napi::Object::New(env);
    o.Set("names", string_array(env, id.names));
    o.Set("subject", id.subject);
    o.Set("issuer", id.issuer);
    o.Set("serial", id.serial);
    o.Set("sha256", id.sha256);
    o.Set("notBefore", static_cast<double>(id.not_before));
    o.Set("notAfter", static_cast<double>(id.not_after));
    o.Set("trust", trust_name(id.trust));
    o.Set("privateNetwork", id.private_network);
    return o;
}

std::string get_string(Napi::Object o, const char* key)
{
    Napi::Value v = o.Get(key);
    return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

amtp::Identity identity_from(Napi::Env env, Napi::Object o)
{
    amtp::Identity id;
    Napi::Value names = o.Get("names");
    if (!names.IsUndefined())
        id.names = strings_from(env, names, "identity.names");
    id.subject = get_string(o, "subject");
    id.issuer = get_string(o, "issuer");
    id.serial = get_string(o, "serial");
    id.sha256 = get_string(o, "sha256");
    if (o.Get("notBefore").IsNumber())
        id.not_before = static_cast<std::time_t>(o.Get("notBefore").As<Napi::Number>().DoubleValue());
    if (o.Get("notAfter").IsNumber())
        id.not_after = static_cast<std::time_t>(o.Get("notAfter").As<Napi::Number>().DoubleValue());
    id.trust = amtp::haraka::trust_by_name(get_string(o, "trust"));
    id.private_network = get_string(o, "privateNetwork");
    return id;
}

Napi::Object reverse_object(Napi::Env env, const amtp::ReverseDnsResult& r)
{
    Napi::Object o = Napi::Object::New(env);
    o.Set("status", amtp::dns_status_name(r.status));
    o.Set("names", string_array(env, r.names));
    o.Set("unconfirmed", string_array(env, r.unconfirmed));
    o.Set("unchecked", string_array(env, r.unchecked));
    o.Set("forwardChecked", r.forward_checked);
    o.Set("error", r.error);
    return o;
}

amtp::ReverseDnsResult reverse_from(Napi::Env env, Napi::Value v)
{
    if (!v.IsObject())
        throw Napi::TypeError::New(env, "the lookup result must be an object from lookupClientNames");
    Napi::Object o = v.As<Napi::Object>();
    amtp::ReverseDnsResult r;
    const auto status = amtp::haraka::dns_status_by_name(get_string(o, "status"));
    if (!status)
        throw Napi::TypeError::New(env, "lookup result status must be answer, negative or temporary");
    r.status = *status;
    auto list = [&](const char* key) {
        Napi::Value x = o.Get(key);
        return x.IsUndefined() ? std::vector<std::string>{} : strings_from(env, x, key);
    };
    r.names = list("names");
    r.unconfirmed = list("unconfirmed");
    r.unchecked = list("unchecked");
    r.forward_checked = o.Get("forwardChecked").ToBoolean();
    r.error = get_string(o, "error");
    return r;
}

// --- workers (libuv's thread pool) ---------------------------------------------------------

class VerifyWorker : public Napi::AsyncWorker {
public:
    VerifyWorker(Napi::Env env, std::shared_ptr<const amtp::TrustStore> trust, std::vector<std::string> chain,
                 amtp::ListenerKind listener, amtp::IpAddress peer)
        : Napi::AsyncWorker(env, "amtp:verify-client"), deferred_(Napi::Promise::Deferred::New(env)),
          trust_(std::move(trust)), chain_(std::move(chain)), listener_(listener), peer_(peer)
    {
    }
    Napi::Promise promise() { return deferred_.Promise(); }

    void Execute() override
    {
        result_ = trust_->verify_client_der(chain_, listener_, peer_, std::time(nullptr));
    }
    void OnOK() override
    {
        Napi::Env env = Env();
        if (result_.ok())
            deferred_.Resolve(identity_object(env, *result_.identity));
        else
            deferred_.Reject(amtp_error(env, result_.reason, result_.detail).Value());
    }
    void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

private:
    Napi::Promise::Deferred deferred_;
    std::shared_ptr<const amtp::TrustStore> trust_;
    std::vector<std::string> chain_;
    amtp::ListenerKind listener_;
    amtp::IpAddress peer_;
    amtp::IdentityResult result_;
};

class StoreWorker : public Napi::AsyncWorker {
public:
    StoreWorker(Napi::Env env, std::string root, std::string domain, std::string local, std::vector<std::string> parts)
        : Napi::AsyncWorker(env, "amtp:maildir"), deferred_(Napi::Promise::Deferred::New(env)),
          root_(std::move(root)), domain_(std::move(domain)), local_(std::move(local)), parts_(std::move(parts))
    {
    }
    Napi::Promise promise() { return deferred_.Promise(); }

    void Execute() override
    {
        std::vector<std::string_view> views(parts_.begin(), parts_.end());
        result_ = amtp::store_in_maildir(root_, domain_, local_, views);
    }
    void OnOK() override
    {
        Napi::Env env = Env();
        if (result_.ok) {
            Napi::Object o = Napi::Object::New(env);
            o.Set("path", result_.path);
            deferred_.Resolve(o);
            return;
        }
        Napi::Error e = amtp_error(env, result_.disk_full ? Reason::storage_full : Reason::storage_temporary,
                                   result_.error);
        // A recipient that can never be stored (bad local part) is not worth a retry.
        e.Value().Set("temporary", result_.temporary);
        deferred_.Reject(e.Value());
    }
    void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

private:
    Napi::Promise::Deferred deferred_;
    std::string root_, domain_, local_;
    std::vector<std::string> parts_;
    amtp::StoreResult result_;
};

// --- DNS on Node's loop ----------------------------------------------------------------------

// Owns the core's resolver and the two libuv handles that drive it. Lives on the main
// thread only; the handles are freed by their close callbacks.
class LoopDns {
public:
    LoopDns(Napi::Env env, const amtp::ResolverOptions& options)
        : env_(env), resolver_(std::make_unique<amtp::Resolver>(options)), context_(env, "amtp:dns")
    {
        uv_loop_t* loop = nullptr;
        if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop)
            throw Napi::Error::New(env, "no libuv loop");
        poll_ = new uv_poll_t;
        timer_ = new uv_timer_t;
        uv_poll_init(loop, poll_, resolver_->fd());
        uv_timer_init(loop, timer_);
        poll_->data = this;
        timer_->data = this;
    }
    ~LoopDns()
    {
        uv_poll_stop(poll_);
        uv_timer_stop(timer_);
        uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
        uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    }
    amtp::Resolver& resolver() { return *resolver_; }

    // After every new lookup and every process(): watch the descriptor and the nearest
    // deadline while something is pending; stop both when idle so Node can exit.
    void schedule()
    {
        if (resolver_->pending() == 0) {
            uv_poll_stop(poll_);
            uv_timer_stop(timer_);
            return;
        }
        uv_poll_start(poll_, UV_READABLE, [](uv_poll_t* h, int, int) { static_cast<LoopDns*>(h->data)->run(); });
        const auto wait = resolver_->next_deadline() - std::chrono::steady_clock::now();
        const auto ms = std::max<long long>(0, std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()) + 1;
        uv_timer_start(timer_, [](uv_timer_t* h) { static_cast<LoopDns*>(h->data)->run(); },
                       static_cast<uint64_t>(ms), 0);
    }

private:
    void run()
    {
        // A callback scope, so that promises resolved here run their reactions now
        // rather than at the next unrelated JavaScript callback.
        Napi::HandleScope handles(env_);
        Napi::CallbackScope scope(env_, context_);
        resolver_->process();
        schedule();
    }

    Napi::Env env_;
    std::unique_ptr<amtp::Resolver> resolver_;
    Napi::AsyncContext context_;
    uv_poll_t* poll_ = nullptr;
    uv_timer_t* timer_ = nullptr;
};

// --- Site: one configuration (shared INI + policy) ----------------------------------------

class Site : public Napi::ObjectWrap<Site> {
public:
    static Napi::Function Define(Napi::Env env)
    {
        return DefineClass(env, "Site",
                           {
                               InstanceAccessor<&Site::GetSettings>("settings"),
                               InstanceMethod<&Site::EhloLine>("ehloLine"),
                               InstanceMethod<&Site::MailAllows>("mailAllows"),
                               InstanceMethod<&Site::RecipientAllows>("recipientAllows"),
                               InstanceMethod<&Site::IsLocalDomain>("isLocalDomain"),
                               InstanceMethod<&Site::CheckRecipient>("checkRecipient"),
                               InstanceMethod<&Site::VerifyClient>("verifyClient"),
                               InstanceMethod<&Site::LookupClientNames>("lookupClientNames"),
                               InstanceMethod<&Site::TraceFields>("traceFields"),
                               InstanceMethod<&Site::SenderMpc>("senderMpc"),
                               InstanceMethod<&Site::PendingLookups>("pendingLookups"),
                           });
    }

    // new Site(iniPath): reads the settings, the policy file they name and the CA files.
    explicit Site(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Site>(info)
    {
        Napi::Env env = info.Env();
        const std::string path = string_arg(info, 0, "configuration file");
        try {
            settings_ = amtp::load_settings(path);
            if (!settings_.policy.file.empty())
                policy_ = std::make_shared<const amtp::Policy>(amtp::Policy::load_file(settings_.policy.file));
            amtp::TrustOptions trust;
            trust.public_ca_files = settings_.tls.trusted_ca;
            trust.private_ca_files = settings_.tls.private_ca;
            trust.crl_file = settings_.tls.crl;
            trust.require_client_eku = settings_.tls.require_client_eku;
            if (policy_)
                trust.private_networks = policy_->private_networks;
            trust_ = amtp::TrustStore::load(trust);
            recipients_ = amtp::LocalRecipients::from_settings(settings_);
        } catch (const amtp::ConfigError& e) {
            throw config_error(env, e);
        }
    }

private:
    Napi::Value GetSettings(const Napi::CallbackInfo& info)
    {
        Napi::Env env = info.Env();
        const amtp::Settings& s = settings_;
        auto endpoints = [&](const std::vector<amtp::Endpoint>& list) {
            Napi::Array a = Napi::Array::New(env, list.size());
            for (size_t i = 0; i < list.size(); ++i) {
                Napi::Object e = Napi::Object::New(env);
                e.Set("address", list[i].address.str());
                e.Set("port", list[i].port);
                e.Set("text", list[i].str());
                a.Set(static_cast<uint32_t>(i), e);
            }
            return a;
        };
        Napi::Object o = Napi::Object::New(env);
        o.Set("source", s.source);
        o.Set("hostname", s.hostname);
        Napi::Object listen = Napi::Object::New(env);
        listen.Set("public", endpoints(s.listen.public_endpoints));
        listen.Set("private", endpoints(s.listen.private_endpoints));
        listen.Set("starttls", s.listen.starttls);
        listen.Set("headerCarrier", s.listen.header_carrier);
        o.Set("listen", listen);
        Napi::Object tls = Napi::Object::New(env);
        tls.Set("certificate", s.tls.certificate);
        tls.Set("key", s.tls.key);
        tls.Set("trustedCa", string_array(env, s.tls.trusted_ca));
        tls.Set("privateCa", string_array(env, s.tls.private_ca));
        tls.Set("minVersion", s.tls.min_version);
        o.Set("tls", tls);
        Napi::Object dns = Napi::Object::New(env);
        dns.Set("resolver", s.dns.resolver);
        dns.Set("forwardConfirm", s.dns.forward_confirm);
        dns.Set("timeoutMs", static_cast<double>(s.dns.timeout.count()));
        o.Set("dns", dns);
        Napi::Object delivery = Napi::Object::New(env);
        delivery.Set("localDomains", string_array(env, s.delivery.local_domains));
        delivery.Set("maildirRoot", s.delivery.maildir_root);
        delivery.Set("lmtp", s.delivery.lmtp);
        o.Set("delivery", delivery);
        Napi::Object limits = Napi::Object::New(env);
        limits.Set("maxMessageSize", static_cast<double>(s.limits.max_message_size));
        limits.Set("maxRecipients", s.limits.max_recipients);
        limits.Set("commandTimeout", static_cast<double>(s.limits.command_timeout.count()));
        limits.Set("dataTimeout", static_cast<double>(s.limits.data_timeout.count()));
        limits.Set("maxErrors", s.limits.max_errors);
        limits.Set("maxConnections", s.limits.max_connections);
        limits.Set("maxConnectionsPerIp", s.limits.max_connections_per_ip);
        o.Set("limits", limits);
        o.Set("policyFile", s.policy.file);
        return o;
    }

    Napi::Value EhloLine(const Napi::CallbackInfo& info)
    {
        return Napi::String::New(info.Env(), policy_ ? policy_->advertise.ehlo_line() : std::string());
    }

    // The site's advertised declarations (checked at MAIL).
    Napi::Value MailAllows(const Napi::CallbackInfo& info)
    {
        const amtp::MpcValue v = mpc_arg(info, 0);
        return Napi::Boolean::New(info.Env(), !policy_ || policy_->advertise.allows(v));
    }

    Napi::Value RecipientAllows(const Napi::CallbackInfo& info)
    {
        const std::string rcpt = string_arg(info, 0, "recipient");
        const amtp::MpcValue v = mpc_arg(info, 1);
        return Napi::Boolean::New(info.Env(), !policy_ || policy_->recipient_allows(rcpt, v));
    }

    Napi::Value IsLocalDomain(const Napi::CallbackInfo& info)
    {
        return Napi::Boolean::New(info.Env(), amtp::haraka::is_local_domain(settings_.delivery.local_domains,
                                                                           string_arg(info, 0, "domain")));
    }

    // checkRecipient(address) -> {reason, detail}: delivery.recipients for a recipient of
    // a local domain, as amtpd decides it at RCPT (none, unknown_recipient,
    // storage_temporary). One stat of a directory or a lookup in memory.
    Napi::Value CheckRecipient(const Napi::CallbackInfo& info)
    {
        const amtp::RecipientVerdict v = recipients_->check(string_arg(info, 0, "recipient"));
        Napi::Object o = Napi::Object::New(info.Env());
        o.Set("reason", amtp::reason_name(v.reason));
        o.Set("detail", v.detail);
        return o;
    }

    Napi::Value SenderMpc(const Napi::CallbackInfo& info)
    {
        const std::string sender = string_arg(info, 0, "sender");
        const auto v = policy_ ? policy_->sender_mpc(sender) : std::nullopt;
        return v ? Napi::Value(Napi::String::New(info.Env(), v->str())) : info.Env().Null();
    }

    // verifyClient(derChain: Buffer[], listener: 'public'|'private', peerIp) -> Promise<identity>;
    // rejects with the reason (no_client_cert, untrusted_issuer, cert_expired, ...).
    Napi::Value VerifyClient(const Napi::CallbackInfo& info)
    {
        Napi::Env env = info.Env();
        if (info.Length() < 1)
            throw Napi::TypeError::New(env, "verifyClient(derChain, listener, peerIp)");
        std::vector<std::string> chain = blobs_from(env, info[0], "derChain");
        const std::string kind = string_arg(info, 1, "listener");
        if (kind != "public" && kind != "private")
            throw Napi::TypeError::New(env, "listener must be 'public' or 'private'");
        const amtp::IpAddress peer = ip_arg(info, 2);
        auto* worker = new VerifyWorker(env, trust_, std::move(chain),
                                        kind == "public" ? amtp::ListenerKind::public_network
                                                         : amtp::ListenerKind::private_network,
                                        peer);
        Napi::Promise p = worker->promise();
        worker->Queue();
        return p;
    }

    // lookupClientNames(ip) -> Promise<{status, names, unconfirmed, unchecked, error}>.
    // A temporary failure is a status, not a rejection (it must become a 4xx).
    Napi::Value LookupClientNames(const Napi::CallbackInfo& info)
    {
        Napi::Env env = info.Env();
        const amtp::IpAddress ip = ip_arg(info, 0);
        try {
            if (!dns_)
                dns_ = std::make_unique<LoopDns>(env, amtp::resolver_options(settings_));
        } catch (const amtp::ConfigError& e) {
            throw config_error(env, e);
        }
        auto deferred = Napi::Promise::Deferred::New(env);
        // The pending lookup keeps its Site (and so the resolver) alive.
        auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info.This().As<Napi::Object>()));
        amtp::lookup_client_names(dns_->resolver(), ip, settings_.dns.forward_confirm,
                                  [env, deferred, self](amtp::ReverseDnsResult r) {
                                      deferred.Resolve(reverse_object(env, r));
                                  });
        dns_->schedule();
        return deferred.Promise();
    }

    Napi::Value PendingLookups(const Napi::CallbackInfo& info)
    {
        return Napi::Number::New(info.Env(), dns_ ? static_cast<double>(dns_->resolver().pending()) : 0.0);
    }

    // traceFields({ehloName, peerIp, ptrName, identity, mpc, sessionId, recipient,
    // tlsVersion, tlsCipher, when}) -> Received + Authentication-Results, CRLF-ended.
    Napi::Value TraceFields(const Napi::CallbackInfo& info)
    {
        Napi::Env env = info.Env();
        if (info.Length() < 1 || !info[0].IsObject())
            throw Napi::TypeError::New(env, "traceFields(info) needs an object");
        Napi::Object o = info[0].As<Napi::Object>();
        amtp::haraka::TraceRequest t;
        t.ehlo_name = get_string(o, "ehloName");
        t.peer_ip = get_string(o, "peerIp");
        // Checked before the identity is read, so the first error named is the same.
        if (!amtp::IpAddress::parse(t.peer_ip))
            throw Napi::TypeError::New(env, "traceFields: peerIp is not an IP address");
        t.ptr_name = get_string(o, "ptrName");
        if (o.Get("identity").IsObject())
            t.identity = identity_from(env, o.Get("identity").As<Napi::Object>());
        t.mpc = get_string(o, "mpc");
        t.session_id = get_string(o, "sessionId");
        t.recipient = get_string(o, "recipient");
        t.tls_version = get_string(o, "tlsVersion");
        t.tls_cipher = get_string(o, "tlsCipher");
        t.when = o.Get("when").IsNumber() ? static_cast<std::time_t>(o.Get("when").As<Napi::Number>().DoubleValue())
                                          : std::time(nullptr);
        const amtp::haraka::TraceResult r = amtp::haraka::trace_fields(settings_.hostname, t);
        if (r.mpc_reason != Reason::none)
            throw amtp_error(env, r.mpc_reason, t.mpc);
        return Napi::String::New(env, r.fields);
    }

    amtp::Settings settings_;
    std::shared_ptr<const amtp::Policy> policy_;
    std::shared_ptr<const amtp::TrustStore> trust_;
    std::shared_ptr<const amtp::LocalRecipients> recipients_;
    std::unique_ptr<LoopDns> dns_;
};

// --- free functions ----------------------------------------------------------------------------

// replyFor(reason, detail?) -> {code, enhanced, text, reason}
Napi::Value ReplyFor(const Napi::CallbackInfo& info)
{
    const std::string name = string_arg(info, 0, "reason");
    const auto reason = amtp::haraka::reason_by_name(name);
    if (!reason)
        throw Napi::TypeError::New(info.Env(), "unknown reason: " + name);
    std::string detail;
    if (info.Length() > 1 && info[1].IsString())
        detail = info[1].As<Napi::String>().Utf8Value();
    return reply_object(info.Env(), amtp::reply_for(*reason, detail));
}

// parseMpc(text) -> {ok, value, reason}
Napi::Value ParseMpc(const Napi::CallbackInfo& info)
{
    Napi::Env env = info.Env();
    const auto r = amtp::parse_mpc(string_arg(info, 0, "mpc"));
    Napi::Object o = Napi::Object::New(env);
    o.Set("ok", r.value.has_value());
    o.Set("value", r.value ? Napi::Value(Napi::String::New(env, r.value->str())) : env.Null());
    o.Set("reason", amtp::reason_name(r.reason));
    return o;
}

// mailCommand(argument, requireMpc) -> {ok, reason, detail, sender, mpc, parameters}: the
// argument of MAIL ("FROM:<a@b> MPC=per/individual") judged exactly as amtpd does, except
// SIZE against the limit (the caller knows it).
Napi::Value MailCommand(const Napi::CallbackInfo& info)
{
    Napi::Env env = info.Env();
    const std::string argument = string_arg(info, 0, "argument");
    const bool required = info.Length() < 2 || info[1].ToBoolean();
    const amtp::haraka::MailCheck m = amtp::haraka::check_mail_command(argument, required);
    Napi::Object o = Napi::Object::New(env);
    if (m.reason != Reason::none) {
        o.Set("ok", false);
        o.Set("reason", amtp::reason_name(m.reason));
        o.Set("detail", m.detail);
        return o;
    }
    Napi::Object params = Napi::Object::New(env);
    for (const auto& [keyword, value] : m.parameters)
        params.Set(keyword, value);
    o.Set("ok", true);
    o.Set("reason", "none");
    o.Set("sender", m.sender);
    o.Set("mpc", m.mpc ? Napi::Value(Napi::String::New(env, m.mpc->str())) : env.Null());
    o.Set("parameters", params);
    return o;
}

// parseMailbox(address) -> {local, domain, address} or null (domain normalised).
Napi::Value ParseMailbox(const Napi::CallbackInfo& info)
{
    Napi::Env env = info.Env();
    const auto box = amtp::parse_mailbox(string_arg(info, 0, "address"));
    if (!box)
        return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o.Set("local", box->local);
    o.Set("domain", box->domain);
    o.Set("address", box->str());
    return o;
}

Napi::Value NormalizeHostName(const Napi::CallbackInfo& info)
{
    const auto name = amtp::normalize_host_name(string_arg(info, 0, "name"));
    return name ? Napi::Value(Napi::String::New(info.Env(), *name)) : info.Env().Null();
}

// checkEhlo(certificateNames, ehloName) -> "none" | "ehlo_syntax" | "ehlo_not_in_cert"
Napi::Value CheckEhlo(const Napi::CallbackInfo& info)
{
    Napi::Env env = info.Env();
    if (info.Length() < 2)
        throw Napi::TypeError::New(env, "checkEhlo(certificateNames, ehloName)");
    const std::vector<std::string> names = strings_from(env, info[0], "certificateNames");
    return Napi::String::New(env, amtp::reason_name(amtp::haraka::check_ehlo(names, string_arg(info, 1, "ehloName"))));
}

// checkPtr(lookupResult, ehloName) -> "none" | ptr_missing | ptr_mismatch | ptr_unconfirmed | dns_temporary
Napi::Value CheckPtr(const Napi::CallbackInfo& info)
{
    Napi::Env env = info.Env();
    if (info.Length() < 2)
        throw Napi::TypeError::New(env, "checkPtr(lookupResult, ehloName)");
    const amtp::ReverseDnsResult r = reverse_from(env, info[0]);
    return Napi::String::New(env,
                             amtp::reason_name(amtp::haraka::check_ptr_answer(r, string_arg(info, 1, "ehloName"))));
}

// scanHeader(lines, hostname?) -> {mpcField, carriers, keep, forgedResults}: the header
// block, one line per entry without its line ending (continuation lines separate),
// through the core's scanner; forgedResults counts Authentication-Results fields that
// claim the authserv-id of `hostname` (the one traceFields writes).
Napi::Value ScanHeader(const Napi::CallbackInfo& info)
{
    Napi::Env env = info.Env();
    if (info.Length() < 1)
        throw Napi::TypeError::New(env, "scanHeader(lines, hostname)");
    const std::string hostname = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    const amtp::haraka::HeaderScan scan =
        amtp::haraka::scan_header(strings_from(env, info[0], "lines"), hostname);
    Napi::Array keep = Napi::Array::New(env, scan.keep.size());
    for (size_t i = 0; i < scan.keep.size(); ++i)
        keep.Set(static_cast<uint32_t>(i), static_cast<bool>(scan.keep[i]));
    Napi::Object o = Napi::Object::New(env);
    o.Set("mpcField", scan.mpc_field);
    o.Set("carriers", string_array(env, scan.carriers));
    o.Set("keep", keep);
    o.Set("forgedResults", scan.forged_results);
    return o;
}

Napi::Value MpcField(const Napi::CallbackInfo& info)
{
    return Napi::String::New(info.Env(), amtp::mpc_field(mpc_arg(info, 0)));
}

// storeInMaildir(root, domain, localPart, parts) -> Promise<{path}>; rejects with
// storage_full or storage_temporary (err.temporary false: the recipient can never be stored).
Napi::Value StoreInMaildir(const Napi::CallbackInfo& info)
{
    Napi::Env env = info.Env();
    std::string root = string_arg(info, 0, "root");
    std::string domain = string_arg(info, 1, "domain");
    std::string local = string_arg(info, 2, "localPart");
    if (info.Length() < 4)
        throw Napi::TypeError::New(env, "storeInMaildir(root, domain, localPart, parts)");
    std::vector<std::string> parts = blobs_from(env, info[3], "parts");
    auto* worker = new StoreWorker(env, std::move(root), std::move(domain), std::move(local), std::move(parts));
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
}

// settleDelivery([{recipient, status: 'delivered'|'temporary'|'permanent', diskFull,
// reply}], othersDurable) -> {reply: reason name, carry, detail}: the core's rule for the
// one reply after DATA when local deliveries ended differently.
Napi::Value SettleDelivery(const Napi::CallbackInfo& info)
{
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsArray())
        throw Napi::TypeError::New(env, "settleDelivery(outcomes, othersDurable)");
    const Napi::Array list = info[0].As<Napi::Array>();
    std::vector<amtp::LocalOutcome> outcomes;
    for (uint32_t i = 0; i < list.Length(); ++i) {
        const Napi::Object o = list.Get(i).As<Napi::Object>();
        amtp::LocalOutcome out;
        out.recipient = o.Get("recipient").ToString().Utf8Value();
        const std::string status = o.Get("status").ToString().Utf8Value();
        out.status = status == "delivered"   ? amtp::LocalStatus::delivered
                     : status == "permanent" ? amtp::LocalStatus::permanent
                                             : amtp::LocalStatus::temporary;
        out.disk_full = o.Get("diskFull").ToBoolean().Value();
        if (o.Get("reply").IsString())
            out.reply = o.Get("reply").As<Napi::String>().Utf8Value();
        outcomes.push_back(std::move(out));
    }
    const bool others = info.Length() > 1 && info[1].ToBoolean().Value();
    const amtp::Settlement st = amtp::settle_delivery(outcomes, others);
    Napi::Object r = Napi::Object::New(env);
    r.Set("reply", amtp::reason_name(st.reply));
    r.Set("carry", st.carry);
    r.Set("detail", st.detail);
    return r;
}

// bounceMessage(hostname, id, sender, [{recipient, reply}], originalParts) -> string: the
// RFC 3464 report amtpd's queue sends (core bounce_message), for recipients that failed
// after others of the message were delivered.
Napi::Value BounceMessage(const Napi::CallbackInfo& info)
{
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[3].IsArray())
        throw Napi::TypeError::New(env, "bounceMessage(hostname, id, sender, failed, original)");
    amtp::QueueEntry entry;
    const std::string hostname = string_arg(info, 0, "hostname");
    entry.id = string_arg(info, 1, "id");
    entry.sender = string_arg(info, 2, "sender");
    const Napi::Array list = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) {
        const Napi::Object o = list.Get(i).As<Napi::Object>();
        entry.recipients.push_back({o.Get("recipient").ToString().Utf8Value(), amtp::QueuedStatus::failed,
                                    o.Get("reply").IsString() ? o.Get("reply").As<Napi::String>().Utf8Value() : ""});
    }
    const std::vector<std::string> original = blobs_from(env, info[4], "original");
    std::string text;
    for (const auto& part : original)
        text += part;
    return Napi::String::New(env, amtp::bounce_message(hostname, entry, text, std::time(nullptr)));
}

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
    exports.Set("bounceMessage", Napi::Function::New<BounceMessage>(env, "bounceMessage"));
    exports.Set("settleDelivery", Napi::Function::New<SettleDelivery>(env, "settleDelivery"));
    exports.Set("Site", Site::Define(env));
    exports.Set("replyFor", Napi::Function::New<ReplyFor>(env, "replyFor"));
    exports.Set("parseMpc", Napi::Function::New<ParseMpc>(env, "parseMpc"));
    exports.Set("mailCommand", Napi::Function::New<MailCommand>(env, "mailCommand"));
    exports.Set("parseMailbox", Napi::Function::New<ParseMailbox>(env, "parseMailbox"));
    exports.Set("normalizeHostName", Napi::Function::New<NormalizeHostName>(env, "normalizeHostName"));
    exports.Set("checkEhlo", Napi::Function::New<CheckEhlo>(env, "checkEhlo"));
    exports.Set("checkPtr", Napi::Function::New<CheckPtr>(env, "checkPtr"));
    exports.Set("scanHeader", Napi::Function::New<ScanHeader>(env, "scanHeader"));
    exports.Set("mpcField", Napi::Function::New<MpcField>(env, "mpcField"));
    exports.Set("storeInMaildir", Napi::Function::New<StoreInMaildir>(env, "storeInMaildir"));
    return exports;
}

} // namespace

NODE_API_MODULE(amtp, Init)
