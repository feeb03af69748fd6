'use strict'
// The Haraka plugin `amtp`: AMTP's rules on Haraka's implicit-TLS listeners. Haraka owns
// sockets, TLS and the SMTP dialogue (its own command sequence and framing); every AMTP
// decision is the core's rulebook (core/include/amtp/rulebook.hpp), reached through one
// native Session per connection (src/session.hpp). Each hook only translates: what
// Haraka saw goes to the session's stage call, and its verdict (reply, log line) comes
// back as Haraka's answer:
//   connect     the session (listener from the local address and port); the client
//               chain goes to the core (tls), and a public listener's PTR lookup starts
//   HELO, EHLO  helo, ehlo (+ ehloPtr when the rulebook asks for the PTR); the EHLO
//               reply's greeting and keywords are the core's
//   MAIL, RCPT  mail, rcpt with the command's raw argument; RSET resets the transaction
//   DATA        data; at its end message (the header through the core's scanner), then
//               the trace fields, storage, and accepted or storeFailed
// Storage is the host's part: the relay hand-off first, then local delivery, with the
// core's settle_delivery deciding what partial outcomes mean (see store()).
// Every hook catches its own errors and always calls next(): an exception in a hook
// would take the whole server down.

const native = require('./lib/native')
const lmtp = require('./lib/lmtp')
// Loaded with require() (not Haraka's sandbox), so the return codes are not globals here.
const { ok: OK, deny: DENY, denysoft: DENYSOFT, denysoftdisconnect: DENYSOFTDISCONNECT } = require('haraka-constants')

let DSN
try {
    DSN = require('haraka-dsn')
} catch {
    // Haraka's respond() accepts any object whose class is named DSN with code and reply.
    DSN = class DSN {
        constructor(code, reply) {
            this.code = code
            this.reply = reply
        }
        static create(code, text, sub, det) {
            return new DSN(code, `${String(code)[0]}.${sub}.${det} ${text}`)
        }
    }
}

// The core's reply (a verdict, or replyFor's) as the object Haraka's respond() understands.
function dsn_of(reply) {
    const parts = (reply.enhanced || '').split('.')
    if (parts.length !== 3) return `${reply.text}`
    return DSN.create(reply.code, reply.text, parseInt(parts[1], 10), parseInt(parts[2], 10))
}

// Haraka's return code for a refused verdict (the reply itself travels in the DSN).
function refused(v) {
    return v.permanent ? DENY : DENYSOFT
}

// A verdict as the hook's answer: its log line, then DENY/DENYSOFT with the core's
// reply, or (pass) the core's reply where Haraka takes one, else Haraka's own.
function answer(plugin, connection, next, v, reply_on_pass) {
    if (v.log) connection.lognotice(plugin, v.log)
    if (v.refused) return next(refused(v), dsn_of(v))
    if (reply_on_pass) return next(OK, dsn_of(v))
    next()
}

// An exception in a hook is a bug, not a decision: logged, and answered with a
// temporary failure so the client retries rather than loses its message.
function internal(plugin, connection, hook, err) {
    connection.logerror(plugin, `amtp ${hook}: ${err.stack || err.message}`)
    return dsn_of(native.replyFor('storage_temporary'))
}

function kv(fields) {
    return Object.entries(fields)
        .filter(([, v]) => v !== undefined && v !== null && v !== '')
        .map(([k, v]) => {
            const s = String(v)
            return /[\s"=]/.test(s) ? `${k}="${s.replace(/"/g, "'")}"` : `${k}=${s}`
        })
        .join(' ')
}

exports.register = function () {
    const plugin = this
    // The shared settings: AMTP_CONFIG, else config/amtp.ini [main] config (the instance's
    // file over the package's default, config/amtp.ini here), else amtp-common's file.
    const cfg = plugin.config.get('amtp.ini', 'ini')
    const file = process.env.AMTP_CONFIG || cfg.main?.config || '/etc/amtp/amtp.ini'
    try {
        plugin.site = new native.Site(file)
    } catch (err) {
        // A server that runs without its AMTP rules must not start at all.
        console.error(`amtp: ${err.message}`)
        process.exit(78)
    }
    const s = plugin.site.settings
    plugin.settings = s
    if (cfg.relay?.amtpd && cfg.relay?.config) start_relay(plugin, cfg.relay)
    // SIGTERM (Haraka leaves it to the default action unless it is pid 1): stop
    // listening, let each open transaction finish (its 250 comes first), then 421 4.3.2
    // to every session and exit 0 when none is left, as amtpd does.
    plugin.open = new Set()
    process.once('SIGTERM', () => shutdown(plugin))
    // SIGHUP: read the settings, the policy and the CA files again; new sessions get them,
    // sessions already open keep the rules they started with. A bad file keeps the old.
    process.on('SIGHUP', () => {
        try {
            const site = new native.Site(file)
            if (plugin.relay_process) {
                // The sidecar reads the same settings again (same hand-off port).
                require('./lib/relay-config').write(file, site.settings, plugin.relay.port)
                plugin.relay_process.kill('SIGHUP')
            }
            plugin.site = site
            plugin.settings = site.settings // listeners stay as they are until a restart
            // With the sidecar, amtpd's own "event=reload result=pass" line (written when
            // it has read the files) is the one that says the whole server reloaded.
            plugin.lognotice(kv(plugin.relay_process ? { event: 'reload', component: 'haraka', result: 'pass', file }
                : { event: 'reload', result: 'pass', file }))
        } catch (err) {
            plugin.logerror(kv({ event: 'reload', result: 'fail', reason: err.code || 'config_error', detail: err.message }))
        }
    })
    plugin.implicit_ports = s.listen.starttls ? [] : [...s.listen.public, ...s.listen.private].map((e) => e.port)
    const server = haraka_server()
    if (server) wrap_listeners(plugin, server)
    else if (plugin.implicit_ports.length > 1) plugin.logcrit('amtp: cannot find Haraka\'s server: only smtps_port has implicit TLS')
    plugin.lognotice(`amtp: configuration ${file}, hostname ${s.hostname}`)
}

// Haraka gives implicit TLS to one port (smtp.ini smtps_port). AMTP needs it on every
// listener (profile B1), so while Haraka creates its listeners the port being created
// is presented as the smtps port when it is one of ours. This reads a Haraka 3.x
// internal (Server.get_smtp_server); docs/haraka.md says so.
function wrap_listeners(plugin, server) {
    if (!server || typeof server.get_smtp_server !== 'function' || server.get_smtp_server.amtp) return
    const original = server.get_smtp_server
    const wrapped = function (ep, timeout) {
        const saved = server.cfg.main.smtps_port
        if (plugin.implicit_ports.includes(ep.port)) server.cfg.main.smtps_port = ep.port
        try {
            // The port comparison runs before the first await inside.
            return original.call(this, ep, timeout)
        } finally {
            server.cfg.main.smtps_port = saved
        }
    }
    wrapped.amtp = true
    server.get_smtp_server = wrapped
}

// amtpd beside Haraka (generated by serve): private-listener mail for other domains is
// handed to its loopback listener; its queue sends it on by AMTP, retries and bounces.
function start_relay(plugin, relay) {
    const fs = require('node:fs')
    const { spawn } = require('node:child_process')
    const s = plugin.settings
    plugin.relay = {
        host: relay.host || '127.0.0.1',
        port: Number(relay.port),
        cert: fs.readFileSync(s.tls.certificate),
        key: fs.readFileSync(s.tls.key),
        ca: s.tls.trustedCa.map((f) => fs.readFileSync(f)),
        servername: s.hostname,
    }
    const child = spawn(relay.amtpd, ['-c', relay.config], { stdio: ['ignore', 'inherit', 'inherit'] })
    child.on('error', (err) => plugin.logcrit(`amtp: relay amtpd: ${err.message}`))
    child.on('exit', (code, sig) => {
        if (!plugin.stopping) plugin.logcrit(`amtp: relay amtpd exited (${code ?? sig}); relaying fails with 451`)
    })
    process.on('exit', () => child.kill('SIGTERM'))
    plugin.relay_process = child
    plugin.lognotice(`amtp: relay hand-off to amtpd on ${plugin.relay.host}:${plugin.relay.port}`)
}

function shutdown(plugin) {
    plugin.stopping = true
    plugin.lognotice(kv({ event: 'shutdown', sessions: plugin.open.size }))
    try {
        haraka_server()?.stopListeners()
    } catch (err) {
        plugin.logerror(`amtp shutdown: ${err.message}`)
    }
    const limit = Date.now() + 1000 * Math.max(10, plugin.settings.limits.dataTimeout)
    const sweep = () => {
        for (const connection of plugin.open) {
            const st = state_of(connection)
            // A session in a transaction (or waiting for a hook) is left to finish it.
            if (connection.transaction || st.closing) continue
            st.closing = true
            try {
                const v = st.session.refusal('close', 'shutting_down', '', false)
                connection.lognotice(plugin, v.log)
                connection.respond(v.code, dsn_of(v), () => connection.disconnect())
            } catch {
                plugin.open.delete(connection)
            }
        }
        if (plugin.open.size === 0 || Date.now() > limit) process.exit(0)
        setTimeout(sweep, 100)
    }
    sweep()
}

// Haraka's server module, already loaded when plugins register (listeners come later).
function haraka_server() {
    for (const [file, mod] of Object.entries(require.cache)) {
        if (/[\\/]haraka[\\/]server\.js$/i.test(file) && typeof mod.exports?.get_smtp_server === 'function') {
            return mod.exports
        }
    }
    return null
}

function state_of(connection) {
    if (!connection.notes.amtp) connection.notes.amtp = {}
    return connection.notes.amtp
}

// The connection's native session (made at connect_init).
function session_of(connection) {
    const session = state_of(connection).session
    if (!session) throw new Error('no AMTP session for this connection')
    return session
}

// Work on the session that outlives its hook call (EHLO's waits for the certificate
// check and the PTR, the end of DATA's storage) keeps the session open; when the
// connection is gone, the last of it closes the session (see hook_disconnect).
async function holding_session(connection, work) {
    const st = state_of(connection)
    st.busy = (st.busy || 0) + 1
    try {
        return await work()
    } finally {
        if (--st.busy === 0 && st.gone) st.session?.close()
    }
}

// The command line's argument as the client sent it ("FROM:<a@b> MPC=per/individual"):
// the core parses it, not Haraka's split of it.
function command_argument(connection) {
    return String(connection.current_line || '').replace(/^\S+\s*/, '')
}

function tls_socket(connection) {
    const c = connection.client
    if (!c) return null
    if (c.cleartext && typeof c.cleartext.getPeerCertificate === 'function') return c.cleartext
    return typeof c.getPeerCertificate === 'function' ? c : null
}

// The client's chain as Node received it, leaf first, as DER buffers.
function peer_chain(connection) {
    const sock = tls_socket(connection)
    if (!sock) return []
    const out = []
    const seen = new Set()
    let cert = sock.getPeerCertificate(true)
    while (cert && cert.raw && !seen.has(cert.fingerprint256)) {
        seen.add(cert.fingerprint256)
        out.push(cert.raw)
        cert = cert.issuerCertificate
    }
    return out
}

// TLS is up (implicit TLS at connect, or after STARTTLS): the core verifies the chain
// Node received (off the loop) and the session starts over with its verdict. Once per
// handshake. Version and cipher come from the socket: at connect_init Haraka has not
// yet copied them to connection.tls.
function tls_established(plugin, connection) {
    const st = state_of(connection)
    if (!st.tls) {
        const sock = tls_socket(connection)
        const version = sock?.getProtocol?.() || connection.tls?.cipher?.version || ''
        const cipher = sock?.getCipher?.()?.name || connection.tls?.cipher?.name || ''
        st.tls = session_of(connection)
            .tls(peer_chain(connection), String(version), String(cipher))
            .then((r) => connection.lognotice(plugin, r.log))
    }
    return st.tls
}

// The peer's PTR names through the core's resolver (the site's DNS settings); asked at
// connect where the rulebook will want them, so the answer is usually there by EHLO.
function ptr_lookup(connection) {
    const st = state_of(connection)
    if (!st.ptr) {
        st.ptr = st.site
            .lookupClientNames(connection.remote.ip)
            .catch((err) => ({ status: 'temporary', names: [], error: err.message }))
    }
    return st.ptr
}

// What one session may have outstanding: bytes read but not yet processed plus replies
// written but not yet sent. Haraka reads everything a client sends and queues every
// reply in memory without limit, so a client that pipelines commands (NOOP in a loop)
// and never reads would grow the process without bound. Past the bound the session is
// closed; no reply can reach a client that does not read. A session that has not passed
// EHLO (no verified certificate yet) gets a much smaller allowance: it has no business
// pipelining more than a few commands.
const OUTSTANDING_LIMIT = 1024 * 1024
const OUTSTANDING_LIMIT_UNVERIFIED = 64 * 1024

function bound_outstanding(plugin, connection) {
    const sock = connection.client
    if (!sock || typeof sock.on !== 'function') return
    const st = state_of(connection)
    sock.on('data', () => {
        if (st.overflowed) return
        const tls = tls_socket(connection)
        const pending = (connection.current_data?.length || 0) + (sock.writableLength || 0) +
            (tls && tls !== sock ? tls.writableLength || 0 : 0)
        const limit = st.session?.authenticated ? OUTSTANDING_LIMIT : OUTSTANDING_LIMIT_UNVERIFIED
        if (pending <= limit) return
        st.overflowed = true
        try {
            connection.lognotice(plugin, session_of(connection).refusal('close', 'input_overflow',
                `pending=${pending} limit=${limit}`, false).log)
        } catch (err) {
            connection.logerror(plugin, `amtp: ${err.message}`)
        }
        connection.current_data = null
        sock.destroy()
    })
}

exports.hook_connect_init = function (next, connection) {
    const plugin = this
    try {
        bound_outstanding(plugin, connection)
        // Connection limits as amtpd counts them (this process; serve runs one, nodes=0).
        const ip = connection.remote.ip
        plugin.connections = (plugin.connections || 0) + 1
        if (!plugin.connections_by_ip) plugin.connections_by_ip = new Map()
        plugin.connections_by_ip.set(ip, (plugin.connections_by_ip.get(ip) || 0) + 1)
        const st = state_of(connection)
        st.counted = true
        plugin.open?.add(connection)
        // The configuration the session started with stays its own (a reload does not
        // change it midway).
        st.site = plugin.site
        st.session = new native.Session(st.site, { peer: ip, local: connection.local.ip,
            port: Number(connection.local.port), id: connection.uuid, relay: !!plugin.relay })
        connection.lognotice(plugin, st.session.connectLog())
        if (connection.tls?.enabled) tls_established(plugin, connection)
        if (st.session.lookupAtConnect) ptr_lookup(connection)
    } catch (err) {
        connection.logerror(plugin, `amtp: ${err.message}`)
    }
    next()
}

// Refused with 421 4.7.0 once connected, as amtpd does (the greeting is the refusal).
exports.hook_connect = function (next, connection) {
    try {
        const limits = this.settings.limits
        const mine = this.connections_by_ip?.get(connection.remote.ip) || 0
        const over = this.connections > limits.maxConnections ? 'max-connections'
            : mine > limits.maxConnectionsPerIp ? 'max-connections-per-ip' : ''
        if (over) {
            const v = session_of(connection).refusal('connect', 'too_many_connections', over, false)
            connection.lognotice(this, v.log)
            return next(DENYSOFTDISCONNECT, dsn_of(v))
        }
    } catch (err) {
        connection.logerror(this, `amtp: ${err.message}`)
    }
    next()
}

exports.hook_disconnect = function (next, connection) {
    try {
        this.open?.delete(connection)
        const st = state_of(connection)
        st.gone = true
        if (!st.busy) st.session?.close()
        if (st.counted) {
            st.counted = false
            this.connections -= 1
            const ip = connection.remote.ip
            const n = (this.connections_by_ip.get(ip) || 1) - 1
            if (n > 0) this.connections_by_ip.set(ip, n)
            else this.connections_by_ip.delete(ip)
        }
    } catch (err) {
        connection.logerror(this, `amtp: ${err.message}`)
    }
    next()
}

// Haraka's own reverse lookup (c-ares, system resolver) is replaced: the core's lookup
// through the configured resolver is the one that decides, and the greeting does not wait.
exports.hook_lookup_rdns = function (next) {
    next(OK, 'Unknown')
}

exports.hook_helo = function (next, connection) {
    try {
        answer(this, connection, next, session_of(connection).helo())
    } catch (err) {
        next(DENYSOFT, internal(this, connection, 'helo', err))
    }
}

async function ehlo_verdict(plugin, connection) {
    const st = state_of(connection)
    const session = session_of(connection)
    if (connection.tls?.enabled) await tls_established(plugin, connection)
    const v = session.ehlo(command_argument(connection))
    if (!v.needsPtr) return v
    const result = await ptr_lookup(connection)
    // The session keeps an answer it may reuse; after a temporary failure a later EHLO
    // asks for the PTR again, and then gets a fresh lookup.
    st.ptr = null
    return session.ehloPtr(result)
}

exports.hook_ehlo = function (next, connection) {
    const plugin = this
    const st = state_of(connection)
    st.ehlo = null
    holding_session(connection, () => ehlo_verdict(plugin, connection))
        .then((v) => {
            if (!v.refused) {
                st.ehlo = v
                const ptr = st.session.ptrName
                if (ptr) connection.set('remote', 'host', ptr)
            }
            answer(plugin, connection, next, v)
        })
        .catch((err) => next(DENYSOFT, internal(plugin, connection, 'ehlo', err)))
}

// The EHLO reply is the core's: its greeting line and keywords (the site's MPC line,
// PIPELINING, 8BITMIME, SIZE, ENHANCEDSTATUSCODES; STARTTLS before TLS).
exports.hook_capabilities = function (next, connection) {
    try {
        const v = state_of(connection).ehlo
        if (v) connection.capabilities.splice(0, connection.capabilities.length, v.text, ...v.lines)
    } catch (err) {
        connection.logerror(this, `amtp capabilities: ${err.message}`)
    }
    next()
}

exports.hook_mail = function (next, connection) {
    try {
        answer(this, connection, next, session_of(connection).mail(command_argument(connection)), true)
    } catch (err) {
        next(DENYSOFT, internal(this, connection, 'mail', err))
    }
}

exports.hook_rcpt = function (next, connection) {
    try {
        answer(this, connection, next, session_of(connection).rcpt(command_argument(connection)), true)
    } catch (err) {
        next(DENYSOFT, internal(this, connection, 'rcpt', err))
    }
}

exports.hook_rset = function (next, connection) {
    try {
        session_of(connection).reset()
    } catch (err) {
        connection.logerror(this, `amtp rset: ${err.message}`)
    }
    next()
}

exports.hook_data = function (next, connection) {
    try {
        answer(this, connection, next, session_of(connection).data())
    } catch (err) {
        next(DENYSOFT, internal(this, connection, 'data', err))
    }
}

// What Haraka saw of the data, for the session's message().
function message_input(transaction) {
    return {
        // Haraka counts the lines as received, the final "." line (3 octets) included.
        size: Math.max(0, (transaction.data_bytes || 0) - 3),
        lineTooLong: !!transaction.notes?.data_line_length_exceeded,
        // Haraka answers a bare LF itself (451, and closes) before the end of DATA.
        bareLinefeed: false,
        header: transaction.header?.header_list || [],
    }
}

// Haraka stops keeping the data past max.bytes (twice limits.max-message-size: below
// that the core's end-of-data stage answers 552 5.3.4) and answers with its own "550
// Message too big!" (the hook's message is not used); the session decides and logs it.
exports.hook_max_data_exceeded = function (next, connection) {
    try {
        const v = session_of(connection).message(message_input(connection.transaction))
        if (v.log) connection.lognotice(this, v.log)
        next(v.refused && !v.permanent ? DENYSOFT : DENY)
    } catch (err) {
        internal(this, connection, 'max_data_exceeded', err)
        next(DENY)
    }
}

// The entries of Haraka's header list the session named (the AMTP-MPC carrier, forged
// Authentication-Results fields) are taken out in place: the message stream writes the
// header from this same array.
function remove_fields(transaction, indices) {
    if (!indices.length) return
    const list = transaction.header.header_list
    for (let i = indices.length - 1; i >= 0; i--) list.splice(indices[i], 1)
    transaction.reset_headers?.()
}

function message_data(transaction) {
    return new Promise((resolve, reject) => {
        try {
            transaction.message_stream.get_data((data) => resolve(Buffer.isBuffer(data) ? data : Buffer.from(data)))
        } catch (err) {
            reject(err)
        }
    })
}

async function finish_message(plugin, connection, transaction) {
    const session = session_of(connection)
    const m = session.message(message_input(transaction))
    if (m.refused) return m
    remove_fields(transaction, m.remove)
    const env = session.envelope()
    const trace = session.traceFields()
    const body = await message_data(transaction)
    const stored = await store(plugin, connection, env, trace, body)
    return stored.failure
        ? session.storeFailed(stored.failure, stored.detail)
        : session.accepted(transaction.uuid, stored.detail || '')
}

// The first failure among a next hop's replies (one per recipient, in order; null: not
// sent), as text; '' when every recipient was taken.
function hop_failure(replies) {
    const bad = replies.find((r) => r && (r.code < 200 || r.code >= 300))
    if (bad) return `${bad.code} ${bad.text}`
    return replies.some((r) => !r) ? 'not sent' : ''
}

// Storage, in amtpd's order (standalone/amtpd/delivery.cpp): the relayed recipients are
// made durable first, handed to the relay sidecar whose queue sends them on, so that a
// failure there is a 451 with nothing stored anywhere; then the local copies. Once the
// hand-off has succeeded, a local failure can no longer be answered 451 (the client's
// retry would send the relayed copy again): the failed recipients are carried. The
// core's settle_delivery says what the local outcomes mean. Resolves with
// {failure: reason name, detail} or {detail}.
async function store(plugin, connection, env, trace, body) {
    const local = env.recipients.filter((r) => r.local)
    const remote = env.recipients.filter((r) => !r.local)
    const relayed = remote.length > 0
    if (relayed) {
        const failure = await relay(plugin, env, remote, trace, body)
        if (failure) return { failure: 'storage_temporary', detail: `relay: ${failure}; nothing stored` }
    }
    if (!local.length) return {}
    const outcomes = await deliver_local(plugin, env, local, [trace + env.mpcField, body])
    const settled = native.settleDelivery(outcomes, relayed)
    if (!relayed && settled.reply !== 'none') return { failure: settled.reply, detail: settled.detail }
    const failed = outcomes.filter((o) => o.status !== 'delivered')
    if (!failed.length) return {}
    const delivered = outcomes.filter((o) => o.status === 'delivered')
    // Nothing handed on, and every durable copy a Maildir file: Haraka has no queue to
    // carry the failed recipients in, so the copies are taken back and the answer is 451:
    // the client's retry delivers each recipient once.
    if (!relayed && delivered.every((o) => o.path)) return undo(delivered, false, `local delivery: ${settled.detail}`)
    return carry(plugin, connection, env, failed, delivered, relayed, settled.detail, [trace, body])
}

// The remote recipients to the relay sidecar, all or none (lib/lmtp.js handoff): the
// MPC travels as MAIL's parameter, no MPC field (relaying by AMTP, draft s5.2).
// Resolves with '' or what failed.
async function relay(plugin, env, remote, trace, body) {
    if (!plugin.relay) return 'no relay sidecar' // the session refuses other domains then
    try {
        return hop_failure(await lmtp.handoff(plugin.relay, {
            ehlo: plugin.settings.hostname,
            sender: env.sender,
            mpc: env.mpc,
            recipients: remote.map((r) => r.address),
            data: Buffer.concat([Buffer.from(trace, 'utf8'), body]),
        }))
    } catch (err) {
        return err.message
    }
}

// Recipients that failed after other copies became durable: never answered 451 (the
// retry would duplicate the durable copies), never lost. Haraka has no queue to retry
// them, so they are reported to the sender in one RFC 3464 bounce (core
// bounce_message, the MPC core outgoing_mpc gives a bounce) sent through the relay
// sidecar's queue. A bounce of a bounce is not sent. Only when the bounce cannot be
// handed on is the answer 451 after all, with every copy that can be taken back taken
// back: a duplicate is preferred to a loss.
async function carry(plugin, connection, env, failed, delivered, relayed, summary, original) {
    const carried = `carried=${failed.map((o) => o.recipient).join(',')}`
    if (!env.sender) return { detail: `${carried} bounce=dropped (null sender: no bounce of a bounce)` }
    if (!plugin.relay) return undo(delivered, relayed, `${summary}; no relay sidecar to send the bounce`)
    try {
        const bounce = state_of(connection).site.bounceMessage(connection.transaction.uuid, env.sender,
            failed.map((o) => ({ recipient: o.recipient, reply: o.reply })), original)
        const failure = hop_failure(await lmtp.handoff(plugin.relay, {
            ehlo: plugin.settings.hostname,
            sender: '',
            mpc: bounce.mpc,
            recipients: [env.sender],
            data: Buffer.from(bounce.message, 'utf8'),
        }))
        if (failure) return undo(delivered, relayed, `bounce ${failure}`)
    } catch (err) {
        return undo(delivered, relayed, `bounce: ${err.message}`)
    }
    return { detail: `${carried} bounce=queued ${summary}` }
}

// A 451 after copies became durable: the Maildir copies are taken back; a copy an LMTP
// agent took, or the relay sidecar queued, cannot be and may be delivered again.
function undo(delivered, relayed, why) {
    const fs = require('node:fs')
    const kept = []
    for (const o of delivered) {
        try {
            if (!o.path) throw new Error('not a Maildir copy')
            fs.unlinkSync(o.path)
        } catch {
            kept.push(o.recipient)
        }
    }
    const copies = kept.length ? `copies kept (may be delivered again): ${kept.join(',')}` : 'local copies taken back'
    return { failure: 'storage_temporary',
        detail: `${why}; ${copies}${relayed ? '; relayed copies may be sent again' : ''}` }
}

// One outcome per local recipient, in order: {recipient, status, diskFull, reply, path}.
async function deliver_local(plugin, env, local, parts) {
    const target = plugin.settings.delivery.lmtp
    if (target) {
        // delivery.lmtp: the agent stores; its reply for each recipient decides that one.
        let replies
        try {
            replies = await lmtp.deliver(target, {
                lhlo: plugin.settings.hostname,
                sender: env.sender,
                recipients: local.map((r) => r.address),
                data: Buffer.concat([Buffer.from(parts[0], 'utf8'), parts[1]]),
            })
        } catch (err) {
            return local.map((r) => ({ recipient: r.address, status: 'temporary', reply: err.message }))
        }
        return local.map((r, i) => {
            const x = replies[i]
            const status = !x ? 'temporary' : x.code >= 200 && x.code < 300 ? 'delivered' : x.code >= 500 ? 'permanent' : 'temporary'
            // The agent's reply first: the bounce takes its enhanced status code from there.
            return { recipient: r.address, status, reply: x ? `${x.code} ${x.text} (LMTP)` : 'LMTP: no reply' }
        })
    }
    const root = plugin.settings.delivery.maildirRoot
    // Each local recipient gets its own durable copy; the 250 waits for all of them.
    const stored = await Promise.allSettled(local.map((r) => native.storeInMaildir(root, r.domain, r.localPart, parts)))
    return stored.map((st, i) => {
        const recipient = local[i].address
        if (st.status === 'fulfilled') return { recipient, status: 'delivered', path: st.value.path }
        const err = st.reason
        return { recipient, status: err.temporary === false ? 'permanent' : 'temporary',
            diskFull: err.code === 'storage_full', reply: err.message }
    })
}

exports.hook_data_post = function (next, connection) {
    const plugin = this
    const transaction = connection.transaction
    holding_session(connection, () => finish_message(plugin, connection, transaction))
        .then((v) => {
            if (!v.refused) transaction.notes.amtp = { accepted: v }
            answer(plugin, connection, next, v)
        })
        .catch((err) => next(DENYSOFT, internal(plugin, connection, 'data_post', err)))
}

// Delivery already happened (fsync'ed) in data_post; the queue hook answers with the
// session's acceptance.
exports.hook_queue = function (next, connection) {
    const accepted = connection.transaction?.notes?.amtp?.accepted
    if (!accepted) return next(DENYSOFT, dsn_of(native.replyFor('storage_temporary')))
    next(OK, dsn_of(accepted))
}
