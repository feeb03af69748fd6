// The AMTP core for Node (node-addon-api): the Haraka plugin is a translation of
// Haraka's hooks into the core's rulebook, through one native Session per connection
// (src/session.hpp), so Haraka decides, words and logs every step as amtpd does.
//
// Threading: the rulebook's calls run synchronously, they are microseconds.
// Certificate verification and Maildir storage (fsync) run on libuv's thread pool
// through Napi::AsyncWorker. DNS never takes a pool thread: the core's libunbound
// resolver is asynchronous and hands out a descriptor, which this file polls with
// uv_poll on Node's own loop, so 50 slow lookups cost 50 callbacks, not 50 threads.
// Only strings and buffers cross into the core: Node carries its own OpenSSL, so no
// OpenSSL object may travel between Node and the core.
#include <napi.h>
#include <uv.h>

#include "session.hpp"

#include "amtp/errors.hpp"
#include "amtp/local_delivery.hpp"
#include "amtp/maildir.hpp"
#include "amtp/queue.hpp"
#include "amtp/reply.hpp"
#include "amtp/resolver.hpp"
#include "amtp/reverse_dns.hpp"
#include "amtp/rulebook.hpp"
#include "amtp/settings.hpp"
#include "amtp/site.hpp"
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

amtp::IpAddress ip_from(Napi::Env env, Napi::Value v, const char* what)
{
    if (!v.IsString())
        throw Napi::TypeError::New(env, std::string(what) + " must be an IP address");
    const std::string text = v.As<Napi::String>().Utf8Value();
    const auto ip = amtp::IpAddress::parse(text);
    if (!ip)
        throw Napi::TypeError::New(env, std::string(what) + " is not an IP address: " + text);
    return *ip;
}

std::string get_string(Napi::Object o, const char* key)
{
    Napi::Value v = o.Get(key);
    return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

// A verdict as JavaScript sees it: {reason, refused, code, enhanced, text, lines,
// permanent, needsPtr, countsAsError, log}. `lines` are the reply's further lines (the
// EHLO keywords); `permanent` says whether Haraka is to DENY or DENYSOFT.
Napi::Object verdict_object(Napi::Env env, const amtp::Verdict& v)
{
    Napi::Object o = Napi::Object::New(env);
    o.Set("reason", amtp::reason_name(v.reason));
    o.Set("refused", v.refused());
    o.Set("code", v.reply.code);
    o.Set("enhanced", v.reply.enhanced);
    o.Set("text", v.reply.text);
    o.Set("lines", string_array(env, v.reply.more));
    o.Set("permanent", v.reply.permanent());
    o.Set("needsPtr", v.needs_ptr);
    o.Set("countsAsError", v.counts_as_error);
    o.Set("log", v.log);
    return o;
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

Reason reason_arg(const Napi::CallbackInfo& info, size_t i)
{
    const std::string name = string_arg(info, i, "reason");
    const auto reason = amtp::reason_from_name(name);
    if (!reason)
        throw Napi::TypeError::New(info.Env(), "unknown reason: " + name);
    return *reason;
}

// --- workers (libuv's thread pool) ---------------------------------------------------------

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


// --- Site: one configuration (shared INI, policy, trust store) -------------------------------

struct AddonData {
    Napi::FunctionReference site;
};

class Site : public Napi::ObjectWrap<Site> {
public:
    static Napi::Function Define(Napi::Env env)
    {
        return DefineClass(env, "Site",
                           {
                               InstanceAccessor<&Site::GetSettings>("settings"),
                               InstanceMethod<&Site::LookupClientNames>("lookupClientNames"),
                               InstanceMethod<&Site::PendingLookups>("pendingLookups"),
                               InstanceMethod<&Site::BounceMessage>("bounceMessage"),
                           });
    }

    // new Site(iniPath): the site as every front-end loads it (amtp::Site::load).
    explicit Site(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Site>(info)
    {
        Napi::Env env = info.Env();
        const std::string path = string_arg(info, 0, "configuration file");
        try {
            site_ = amtp::Site::load(path);
        } catch (const amtp::ConfigError& e) {
            throw config_error(env, e);
        }
    }

    const std::shared_ptr<const amtp::Site>& site() const { return site_; }

private:
    Napi::Value GetSettings(const Napi::CallbackInfo& info)
    {
        Napi::Env env = info.Env();
        const amtp::Settings& s = site_->settings;
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

    // lookupClientNames(ip) -> Promise<{status, names, unconfirmed, unchecked, error}>,
    // for Session.ehloPtr. A temporary failure is a status, not a rejection.
    Napi::Value LookupClientNames(const Napi::CallbackInfo& info)
    {
        Napi::Env env = info.Env();
        const amtp::IpAddress ip = ip_from(env, info.Length() > 0 ? info[0] : env.Undefined(), "address");
        try {
            if (!dns_)
                dns_ = std::make_unique<LoopDns>(env, amtp::resolver_options(site_->settings));
        } catch (const amtp::ConfigError& e) {
            throw config_error(env, e);
        }
        auto deferred = Napi::Promise::Deferred::New(env);
        // The pending lookup keeps its Site (and so the resolver) alive.
        auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info.This().As<Napi::Object>()));
        amtp::lookup_client_names(dns_->resolver(), ip, site_->settings.dns.forward_confirm,
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

    // bounceMessage(id, sender, [{recipient, reply}], originalParts) -> {message, mpc}:
    // the RFC 3464 report amtpd's queue sends (core bounce_message), for recipients
    // that failed after others of the message were delivered, and the MPC it goes
    // out with (core outgoing_mpc: a bounce has the null sender).
    Napi::Value BounceMessage(const Napi::CallbackInfo& info)
    {
        Napi::Env env = info.Env();
        if (info.Length() < 4 || !info[2].IsArray())
            throw Napi::TypeError::New(env, "bounceMessage(id, sender, failed, original)");
        amtp::QueueEntry entry;
        entry.id = string_arg(info, 0, "id");
        entry.sender = string_arg(info, 1, "sender");
        const Napi::Array list = info[2].As<Napi::Array>();
        for (uint32_t i = 0; i < list.Length(); ++i) {
            if (!list.Get(i).IsObject())
                throw Napi::TypeError::New(env, "failed must be an array of {recipient, reply}");
            const Napi::Object o = list.Get(i).As<Napi::Object>();
            entry.recipients.push_back({get_string(o, "recipient"), amtp::QueuedStatus::failed, get_string(o, "reply")});
        }
        std::string text;
        for (const auto& part : blobs_from(env, info[3], "original"))
            text += part;
        const amtp::OutgoingMpc mpc = amtp::outgoing_mpc(site_->policy.get(), "", "");
        Napi::Object o = Napi::Object::New(env);
        o.Set("message", amtp::bounce_message(site_->settings.hostname, entry, text, std::time(nullptr)));
        o.Set("mpc", mpc.value ? Napi::Value(Napi::String::New(env, mpc.value->str())) : env.Null());
        return o;
    }

    std::shared_ptr<const amtp::Site> site_;
    std::unique_ptr<LoopDns> dns_;
};

// --- Session: one connection's facts and rulebook ------------------------------------------

class Session;

// The client's chain verified off the loop; the verdict is handed to the session (and
// so to the rulebook) back on the main thread.
class VerifyWorker : public Napi::AsyncWorker {
public:
    VerifyWorker(Napi::Env env, Napi::Object owner, Session* session, std::vector<std::string> chain,
                 std::string version, std::string cipher);
    Napi::Promise promise() { return deferred_.Promise(); }

    void Execute() override;
    void OnOK() override;
    void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

private:
    Napi::Promise::Deferred deferred_;
    Napi::ObjectReference owner_;   // keeps the session alive while the chain is checked
    Session* session_;
    std::shared_ptr<const amtp::TrustStore> trust_;
    amtp::ListenerKind listener_;
    amtp::IpAddress peer_;
    std::vector<std::string> chain_;
    std::string version_, cipher_;
    amtp::IdentityResult result_;
};

class Session : public Napi::ObjectWrap<Session> {
public:
    static Napi::Function Define(Napi::Env env)
    {
        return DefineClass(env, "Session",
                           {
                               InstanceAccessor<&Session::GetListener>("listener"),
                               InstanceAccessor<&Session::GetAuthenticated>("authenticated"),
                               InstanceAccessor<&Session::GetPtrName>("ptrName"),
                               InstanceAccessor<&Session::GetInTransaction>("inTransaction"),
                               InstanceAccessor<&Session::GetLookupAtConnect>("lookupAtConnect"),
                               InstanceMethod<&Session::ConnectLog>("connectLog"),
                               InstanceMethod<&Session::Tls>("tls"),
                               InstanceMethod<&Session::Helo>("helo"),
                               InstanceMethod<&Session::Ehlo>("ehlo"),
                               InstanceMethod<&Session::EhloPtr>("ehloPtr"),
                               InstanceMethod<&Session::Mail>("mail"),
                               InstanceMethod<&Session::Rcpt>("rcpt"),
                               InstanceMethod<&Session::Data>("data"),
                               InstanceMethod<&Session::Reset>("reset"),
                               InstanceMethod<&Session::Message>("message"),
                               InstanceMethod<&Session::Envelope>("envelope"),
                               InstanceMethod<&Session::TraceFields>("traceFields"),
                               InstanceMethod<&Session::Accepted>("accepted"),
                               InstanceMethod<&Session::StoreFailed>("storeFailed"),
                               InstanceMethod<&Session::Refusal>("refusal"),
                               InstanceMethod<&Session::Close>("close"),
                           });
    }

    // new Session(site, {peer, local, port, id, relay}): the connection from `peer` to
    // local:port (which says the listener), Haraka's id for it, and whether this
    // Haraka has a relay sidecar.
    explicit Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info)
    {
        Napi::Env env = info.Env();
        const Napi::FunctionReference& site_class = env.GetInstanceData<AddonData>()->site;
        if (info.Length() < 2 || !info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(site_class.Value()) ||
            !info[1].IsObject())
            throw Napi::TypeError::New(env, "new Session(site, {peer, local, port, id, relay})");
        const Site* site = Napi::ObjectWrap<Site>::Unwrap(info[0].As<Napi::Object>());
        const Napi::Object o = info[1].As<Napi::Object>();
        const amtp::IpAddress peer = ip_from(env, o.Get("peer"), "peer");
        const amtp::IpAddress local = ip_from(env, o.Get("local"), "local");
        const Napi::Value port = o.Get("port");
        if (!port.IsNumber())
            throw Napi::TypeError::New(env, "port must be a number");
        session_.emplace(site->site(), peer, local, port.As<Napi::Number>().Uint32Value(), get_string(o, "id"),
                         o.Get("relay").ToBoolean().Value());
    }

    // Null once close() ran.
    amtp::haraka::Session* session() { return session_ ? &*session_ : nullptr; }

private:
    // The session of a call; a closed one is a programming error of the caller.
    amtp::haraka::Session& live(const Napi::CallbackInfo& info)
    {
        if (!session_)
            throw Napi::Error::New(info.Env(), "the AMTP session is closed");
        return *session_;
    }

    // The accessors of a closed session read as a fresh one's.
    Napi::Value GetListener(const Napi::CallbackInfo& info)
    {
        const bool pub = !session_ || session_->facts().listener == amtp::ListenerKind::public_network;
        return Napi::String::New(info.Env(), pub ? "public" : "private");
    }
    Napi::Value GetAuthenticated(const Napi::CallbackInfo& info)
    {
        return Napi::Boolean::New(info.Env(), session_ && session_->facts().authenticated);
    }
    Napi::Value GetPtrName(const Napi::CallbackInfo& info)
    {
        return Napi::String::New(info.Env(), session_ ? session_->facts().ptr_name : std::string());
    }
    Napi::Value GetInTransaction(const Napi::CallbackInfo& info)
    {
        return Napi::Boolean::New(info.Env(), session_ && session_->facts().in_mail);
    }
    Napi::Value GetLookupAtConnect(const Napi::CallbackInfo& info)
    {
        return Napi::Boolean::New(info.Env(), session_ && session_->lookup_at_connect());
    }

    // close(): the connection ended; its facts are freed now rather than whenever the
    // garbage collector finalises this object. A certificate check still running ends
    // without effect.
    Napi::Value Close(const Napi::CallbackInfo& info)
    {
        session_.reset();
        return info.Env().Undefined();
    }

    Napi::Value ConnectLog(const Napi::CallbackInfo& info)
    {
        return Napi::String::New(info.Env(), live(info).connect_log());
    }

    // tls(derChain, version, cipher) -> Promise<{reason, log}>: TLS is up (at connect,
    // or after STARTTLS) with this client chain, leaf first; the core verifies it.
    Napi::Value Tls(const Napi::CallbackInfo& info)
    {
        Napi::Env env = info.Env();
        if (info.Length() < 1)
            throw Napi::TypeError::New(env, "tls(derChain, version, cipher)");
        std::vector<std::string> chain = blobs_from(env, info[0], "derChain");
        live(info);
        auto* worker = new VerifyWorker(env, info.This().As<Napi::Object>(), this, std::move(chain),
                                        string_arg(info, 1, "version"), string_arg(info, 2, "cipher"));
        Napi::Promise p = worker->promise();
        worker->Queue();
        return p;
    }

    Napi::Value Helo(const Napi::CallbackInfo& info) { return verdict_object(info.Env(), live(info).helo()); }
    Napi::Value Ehlo(const Napi::CallbackInfo& info)
    {
        return verdict_object(info.Env(), live(info).ehlo(string_arg(info, 0, "argument")));
    }
    // ehloPtr(lookupResult): the answer of Site.lookupClientNames for a needsPtr EHLO.
    Napi::Value EhloPtr(const Napi::CallbackInfo& info)
    {
        Napi::Env env = info.Env();
        return verdict_object(env, live(info).ehlo_ptr(reverse_from(env, info.Length() > 0 ? info[0] : env.Undefined())));
    }
    // mail("FROM:<a@b> SIZE=10 MPC=per/individual"): the command's whole argument.
    Napi::Value Mail(const Napi::CallbackInfo& info)
    {
        return verdict_object(info.Env(), live(info).mail(string_arg(info, 0, "argument")));
    }
    // rcpt("TO:<a@b>"): the command's whole argument.
    Napi::Value Rcpt(const Napi::CallbackInfo& info)
    {
        return verdict_object(info.Env(), live(info).rcpt(string_arg(info, 0, "argument")));
    }
    Napi::Value Data(const Napi::CallbackInfo& info) { return verdict_object(info.Env(), live(info).data()); }
    Napi::Value Reset(const Napi::CallbackInfo& info)
    {
        live(info).reset();
        return info.Env().Undefined();
    }

    // message({size, lineTooLong, bareLinefeed, header}) -> verdict + {remove}: header
    // is Haraka's header list (one field per entry); `remove` the entries to take out
    // (the AMTP-MPC carrier, forged Authentication-Results) when the message is to be
    // stored. A verdict that is not refused has no reply: store, then accepted() or
    // storeFailed().
    Napi::Value Message(const Napi::CallbackInfo& info)
    {
        Napi::Env env = info.Env();
        if (info.Length() < 1 || !info[0].IsObject())
            throw Napi::TypeError::New(env, "message({size, lineTooLong, bareLinefeed, header})");
        const Napi::Object o = info[0].As<Napi::Object>();
        amtp::haraka::MessageInput in;
        const Napi::Value size = o.Get("size");
        if (!size.IsNumber() || size.As<Napi::Number>().DoubleValue() < 0)
            throw Napi::TypeError::New(env, "size must be a number of octets");
        in.size = static_cast<std::uint64_t>(size.As<Napi::Number>().DoubleValue());
        in.line_too_long = o.Get("lineTooLong").ToBoolean().Value();
        in.bare_linefeed = o.Get("bareLinefeed").ToBoolean().Value();
        in.header = strings_from(env, o.Get("header"), "header");
        const amtp::haraka::MessageVerdict m = live(info).message(in);
        Napi::Object v = verdict_object(env, m.verdict);
        Napi::Array remove = Napi::Array::New(env, m.remove.size());
        for (size_t i = 0; i < m.remove.size(); ++i)
            remove.Set(static_cast<uint32_t>(i), static_cast<double>(m.remove[i]));
        v.Set("remove", remove);
        return v;
    }

    // envelope() -> {sender, mpc, mpcField, recipients: [{address, local, domain,
    // localPart}]}: what the transaction established, for storing the message.
    Napi::Value Envelope(const Napi::CallbackInfo& info)
    {
        Napi::Env env = info.Env();
        const amtp::Envelope& e = live(info).facts().envelope;
        const bool has_mpc = !e.mpc.role.empty();
        Napi::Object o = Napi::Object::New(env);
        o.Set("sender", e.sender);
        o.Set("mpc", has_mpc ? e.mpc.str() : std::string());
        o.Set("mpcField", has_mpc ? amtp::mpc_field(e.mpc) : std::string());
        Napi::Array list = Napi::Array::New(env, e.recipients.size());
        for (size_t i = 0; i < e.recipients.size(); ++i) {
            const std::string& address = e.recipients[i];
            const auto at = address.rfind('@');
            Napi::Object r = Napi::Object::New(env);
            r.Set("address", address);
            r.Set("local", i < e.local.size() && e.local[i]);
            r.Set("localPart", address.substr(0, at));
            r.Set("domain", at == std::string::npos ? std::string() : address.substr(at + 1));
            list.Set(static_cast<uint32_t>(i), r);
        }
        o.Set("recipients", list);
        return o;
    }

    // traceFields() -> Received + Authentication-Results (CRLF lines) for the message.
    Napi::Value TraceFields(const Napi::CallbackInfo& info)
    {
        return Napi::String::New(info.Env(), live(info).trace_fields(std::time(nullptr)));
    }

    // accepted(messageId, detail?) -> verdict (the 250 and the message's log line).
    Napi::Value Accepted(const Napi::CallbackInfo& info)
    {
        const std::string id = string_arg(info, 0, "messageId");
        const std::string detail = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
        return verdict_object(info.Env(), live(info).accepted(id, detail));
    }

    // storeFailed(reason, detail?): storage_full, storage_temporary or delivery_refused.
    Napi::Value StoreFailed(const Napi::CallbackInfo& info)
    {
        const Reason reason = reason_arg(info, 0);
        const std::string detail = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
        return verdict_object(info.Env(), live(info).store_failed(reason, detail));
    }

    // refusal(event, reason, detail?, countsAsError?) -> verdict: a refusal the host
    // makes itself (connection limits, a client that does not read, shutdown).
    Napi::Value Refusal(const Napi::CallbackInfo& info)
    {
        const std::string event = string_arg(info, 0, "event");
        const Reason reason = reason_arg(info, 1);
        const std::string detail = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
        const bool counts = info.Length() <= 3 || info[3].ToBoolean().Value();
        return verdict_object(info.Env(), live(info).refusal(event, reason, detail, counts));
    }

    std::optional<amtp::haraka::Session> session_;
};

VerifyWorker::VerifyWorker(Napi::Env env, Napi::Object owner, Session* session, std::vector<std::string> chain,
                           std::string version, std::string cipher)
    : Napi::AsyncWorker(env, "amtp:verify-client"), deferred_(Napi::Promise::Deferred::New(env)),
      owner_(Napi::Persistent(owner)), session_(session), trust_(session->session()->site().trust),
      listener_(session->session()->facts().listener), peer_(session->session()->facts().peer),
      chain_(std::move(chain)), version_(std::move(version)), cipher_(std::move(cipher))
{
}

void VerifyWorker::Execute()
{
    result_ = trust_->verify_client_der(chain_, listener_, peer_, std::time(nullptr));
}

void VerifyWorker::OnOK()
{
    Napi::Env env = Env();
    const std::string reason = amtp::reason_name(result_.ok() ? Reason::none : result_.reason);
    // A session closed meanwhile (the client left) takes nothing more.
    amtp::haraka::Session* session = session_->session();
    const std::string log = session ? session->tls(std::move(result_), version_, cipher_) : std::string();
    Napi::Object o = Napi::Object::New(env);
    o.Set("reason", reason);
    o.Set("log", log);
    deferred_.Resolve(o);
}

// --- free functions ----------------------------------------------------------------------------

// replyFor(reason, detail?) -> {code, enhanced, text, reason}: the core's reply for a
// reason, for answers made before a session exists.
Napi::Value ReplyFor(const Napi::CallbackInfo& info)
{
    const Reason reason = reason_arg(info, 0);
    std::string detail;
    if (info.Length() > 1 && info[1].IsString())
        detail = info[1].As<Napi::String>().Utf8Value();
    return reply_object(info.Env(), amtp::reply_for(reason, detail));
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
        if (!list.Get(i).IsObject())
            throw Napi::TypeError::New(env, "settleDelivery: outcomes must be objects");
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

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
    auto* data = new AddonData;
    const Napi::Function site = Site::Define(env);
    data->site = Napi::Persistent(site);
    env.SetInstanceData(data);
    exports.Set("Site", site);
    exports.Set("Session", Session::Define(env));
    exports.Set("replyFor", Napi::Function::New<ReplyFor>(env, "replyFor"));
    exports.Set("settleDelivery", Napi::Function::New<SettleDelivery>(env, "settleDelivery"));
    exports.Set("storeInMaildir", Napi::Function::New<StoreInMaildir>(env, "storeInMaildir"));
    return exports;
}

} // namespace

NODE_API_MODULE(amtp, Init)
