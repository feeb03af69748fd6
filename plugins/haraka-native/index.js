'use strict'
// The Haraka plugin `amtp`: AMTP's rules on Haraka's implicit-TLS listeners, decided by
// the core (through the addon) so that every reply equals amtpd's. Haraka owns sockets,
// TLS and the SMTP dialogue; this plugin judges each step:
//   connect   the client chain is verified by the core (not by Node: the project's trust
//             rules differ: serverAuth-only client certificates, private CAs and pins per
//             listener, exact refusal reasons) and the PTR lookup starts, both off the loop
//   HELO      504 5.5.1
//   EHLO      name syntax, certificate, name in certificate, PTR (public listeners only)
//   EHLO reply  the site's MPC line and ENHANCEDSTATUSCODES
//   MAIL      MPC= (555/501), the advertised declarations (550)
//   RCPT      local domains only (no relay), per-recipient rules (550)
//   DATA end  a pre-existing MPC: field (550), the AMTP-MPC carrier cross-check, then
//             Maildir delivery with fsync before the 250
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

// The core's reply for a reason as the object Haraka's respond() understands.
function dsn_of(reply) {
    const parts = (reply.enhanced || '').split('.')
    if (parts.length !== 3) return `${reply.text}`
    return DSN.create(reply.code, reply.text, parseInt(parts[1], 10), parseInt(parts[2], 10))
}

function refusal(reason, detail) {
    return dsn_of(native.replyFor(reason, detail || undefined))
}

function positive(code, enhanced, text) {
    return dsn_of({ code, enhanced, text })
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
    const cfg = plugin.config.get('amtp.ini', 'ini')
    const file = process.env.AMTP_CONFIG || cfg.main?.config
    if (!file) {
        console.error('amtp: no configuration: set [main] config= in config/amtp.ini or AMTP_CONFIG')
        process.exit(78)
    }
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
    plugin.private_ports = new Set(s.listen.private.map((e) => e.port))
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
                connection.respond(421, refusal('shutting_down'), () => connection.disconnect())
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

// The configuration a session started with (a reload does not change it midway).
function site_of(plugin, connection) {
    const st = state_of(connection)
    if (!st.site) st.site = plugin.site
    return st.site
}

function state_of(connection) {
    if (!connection.notes.amtp) connection.notes.amtp = {}
    return connection.notes.amtp
}

function listener_of(plugin, connection) {
    return plugin.private_ports.has(Number(connection.local.port)) ? 'private' : 'public'
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

// Starts (once per connection) the chain verification; never rejects.
function verification(plugin, connection) {
    const st = state_of(connection)
    if (!st.verify) {
        const kind = listener_of(plugin, connection)
        st.verify = site_of(plugin, connection).verifyClient(peer_chain(connection), kind, connection.remote.ip).then(
            (identity) => ({ identity }),
            (err) => ({ reason: err.code || 'cert_invalid', detail: err.detail || err.message }),
        )
    }
    return st.verify
}

function ptr_lookup(plugin, connection) {
    const st = state_of(connection)
    if (!st.ptr) {
        st.ptr = site_of(plugin, connection)
            .lookupClientNames(connection.remote.ip)
            .catch((err) => ({ status: 'temporary', names: [], error: err.message }))
    }
    return st.ptr
}

function implicit_tls(connection) {
    return !!connection.tls?.enabled
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
        const limit = st.authenticated ? OUTSTANDING_LIMIT : OUTSTANDING_LIMIT_UNVERIFIED
        if (pending <= limit) return
        st.overflowed = true
        connection.lognotice(plugin, kv({ event: 'close', session: connection.uuid, peer: connection.remote.ip,
            result: 'fail', reason: 'output_backlog', pending, limit }))
        connection.current_data = null
        sock.destroy()
    })
}

exports.hook_connect_init = function (next, connection) {
    try {
        bound_outstanding(this, connection)
        // Connection limits as amtpd counts them (this process; serve runs one, nodes=0).
        const ip = connection.remote.ip
        this.connections = (this.connections || 0) + 1
        if (!this.connections_by_ip) this.connections_by_ip = new Map()
        this.connections_by_ip.set(ip, (this.connections_by_ip.get(ip) || 0) + 1)
        state_of(connection).counted = true
        this.open?.add(connection)
        site_of(this, connection)
        if (implicit_tls(connection)) {
            verification(this, connection)
            if (listener_of(this, connection) === 'public') ptr_lookup(this, connection)
        }
    } catch (err) {
        connection.logerror(this, `amtp: ${err.message}`)
    }
    next()
}

// Refused with 421 4.7.0 once connected, as amtpd does (the greeting is the refusal).
exports.hook_connect = function (next, connection) {
    try {
        const limits = this.settings.limits
        const mine = this.connections_by_ip?.get(connection.remote.ip) || 0
        if (this.connections > limits.maxConnections || mine > limits.maxConnectionsPerIp) {
            connection.lognotice(this, kv({ event: 'connect', session: connection.uuid, peer: connection.remote.ip,
                result: 'fail', reason: 'too_many_connections' }))
            return next(DENYSOFTDISCONNECT, refusal('too_many_connections'))
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

exports.hook_helo = function (next, connection, helo) {
    try {
        connection.lognotice(this, kv({ event: 'helo', session: connection.uuid, peer: connection.remote.ip,
            result: 'fail', reason: 'helo_refused', helo }))
        next(DENY, refusal('helo_refused'))
    } catch (err) {
        next(DENYSOFT, refusal('storage_temporary'))
    }
}

async function ehlo_verdict(plugin, connection, argument) {
    const name = native.normalizeHostName(argument)
    if (!name || native.checkEhlo([], name) === 'ehlo_syntax') return { reason: 'ehlo_syntax' }
    const v = await verification(plugin, connection)
    if (!v.identity) return { reason: v.reason, detail: v.detail }
    const by_cert = native.checkEhlo(v.identity.names, name)
    if (by_cert !== 'none') return { reason: by_cert, identity: v.identity }
    if (listener_of(plugin, connection) === 'private') return { reason: 'none', name, identity: v.identity }
    const result = await ptr_lookup(plugin, connection)
    const reason = native.checkPtr(result, name)
    // A failed lookup is asked again by a later EHLO rather than reused.
    if (result.status === 'temporary') delete state_of(connection).ptr
    return { reason, name, identity: v.identity, ptr: result, ptr_name: reason === 'none' ? name : '' }
}

exports.hook_ehlo = function (next, connection, argument) {
    const plugin = this
    const st = state_of(connection)
    st.authenticated = false
    if (!implicit_tls(connection)) {
        // STARTTLS mode before TLS: nothing is checked; the EHLO after TLS is (profile B1).
        return next()
    }
    ehlo_verdict(plugin, connection, argument)
        .then((v) => {
            const fields = { event: 'ehlo', session: connection.uuid, peer: connection.remote.ip,
                result: v.reason === 'none' ? 'pass' : 'fail', reason: v.reason, ehlo: v.name || argument,
                cert: v.identity ? v.identity.names[0] || v.identity.subject : undefined, detail: v.detail }
            if (v.ptr && v.reason !== 'none') {
                fields.ptr = v.ptr.names.join(',')
                fields.dns = v.ptr.error
            }
            connection.lognotice(plugin, kv(fields))
            if (v.reason !== 'none') return next(DENY, refusal(v.reason))
            st.authenticated = true
            st.ehlo_name = v.name
            st.ptr_name = v.ptr_name || ''
            st.identity = v.identity
            if (v.ptr_name) connection.set('remote', 'host', v.ptr_name)
            next()
        })
        .catch((err) => {
            connection.logerror(plugin, `amtp ehlo: ${err.stack || err.message}`)
            next(DENYSOFT, refusal('dns_temporary'))
        })
}

exports.hook_capabilities = function (next, connection) {
    try {
        if (state_of(connection).authenticated) {
            const caps = connection.capabilities
            const line = site_of(this, connection).ehloLine()
            if (line) caps.splice(1, 0, line)
            if (!caps.includes('ENHANCEDSTATUSCODES')) caps.push('ENHANCEDSTATUSCODES')
        }
    } catch (err) {
        connection.logerror(this, `amtp capabilities: ${err.message}`)
    }
    next()
}

function command_argument(connection) {
    return String(connection.current_line || '').replace(/^\S+\s*/, '')
}

exports.hook_mail = function (next, connection) {
    const plugin = this
    try {
        const st = state_of(connection)
        if (!implicit_tls(connection)) return next(DENY, refusal('tls_required'))
        if (!st.authenticated) return next(DENY, refusal('ehlo_first'))
        // listen.header-carrier (profile B5): MAIL may come without MPC=; the value then
        // arrives in an AMTP-MPC field and is judged at the end of DATA.
        const m = native.mailCommand(command_argument(connection), !plugin.settings.listen.headerCarrier)
        const log = { event: 'mail', session: connection.uuid, peer: connection.remote.ip }
        if (!m.ok) {
            connection.lognotice(plugin, kv({ ...log, result: 'fail', reason: m.reason, detail: m.detail }))
            return next(DENY, refusal(m.reason, m.detail))
        }
        if (m.parameters.SIZE !== undefined && Number(m.parameters.SIZE) > plugin.settings.limits.maxMessageSize) {
            return next(DENY, refusal('message_too_big'))
        }
        if (m.mpc && !site_of(plugin, connection).mailAllows(m.mpc)) {
            connection.lognotice(plugin, kv({ ...log, result: 'fail', reason: 'mpc_denied', mpc: m.mpc }))
            return next(DENY, refusal('mpc_denied'))
        }
        connection.transaction.notes.amtp = { sender: m.sender, mpc: m.mpc, recipients: [], remote: [] }
        connection.lognotice(plugin, kv({ ...log, result: 'pass', reason: 'none', mpc: m.mpc || 'header' }))
        next(OK, positive(250, '2.1.0', 'Sender OK'))
    } catch (err) {
        connection.logerror(plugin, `amtp mail: ${err.stack || err.message}`)
        next(DENYSOFT, refusal('storage_temporary'))
    }
}

exports.hook_rcpt = function (next, connection, params) {
    const plugin = this
    try {
        const t = connection.transaction?.notes?.amtp
        if (!t) return next(DENY, refusal('bad_sequence'))
        const rcpt = params[0]
        const box = native.parseMailbox(`${rcpt.user}@${rcpt.host}`)
        const log = { event: 'rcpt', session: connection.uuid, peer: connection.remote.ip }
        if (!box) return next(DENY, refusal('bad_recipient'))
        if (t.recipients.length + t.remote.length >= plugin.settings.limits.maxRecipients) return next(DENYSOFT, refusal('too_many_recipients'))
        if (!site_of(plugin, connection).isLocalDomain(box.domain)) {
            // Only private listeners relay (draft s5.1), through amtpd's queue (docs/haraka.md).
            if (plugin.relay && listener_of(plugin, connection) === 'private') {
                t.remote.push(box)
                connection.lognotice(plugin, kv({ ...log, result: 'pass', reason: 'none', rcpt: box.address, relay: 'amtpd' }))
                return next(OK, positive(250, '2.1.5', 'Recipient OK'))
            }
            connection.lognotice(plugin, kv({ ...log, result: 'fail', reason: 'relay_denied', rcpt: box.address }))
            return next(DENY, refusal('relay_denied'))
        }
        // delivery.recipients, decided by the core: a peer cannot make the plugin create
        // mailboxes without bound.
        const known = site_of(plugin, connection).checkRecipient(box.address)
        if (known.reason !== 'none') {
            connection.lognotice(plugin, kv({ ...log, result: 'fail', reason: known.reason, rcpt: box.address, detail: known.detail }))
            const reply = native.replyFor(known.reason)
            return next(reply.code >= 500 ? DENY : DENYSOFT, dsn_of(reply))
        }
        if (t.mpc && !site_of(plugin, connection).recipientAllows(box.address, t.mpc)) {
            connection.lognotice(plugin, kv({ ...log, result: 'fail', reason: 'mpc_denied', rcpt: box.address }))
            return next(DENY, refusal('mpc_denied'))
        }
        t.recipients.push(box)
        connection.lognotice(plugin, kv({ ...log, result: 'pass', reason: 'none', rcpt: box.address }))
        next(OK, positive(250, '2.1.5', 'Recipient OK'))
    } catch (err) {
        connection.logerror(plugin, `amtp rcpt: ${err.stack || err.message}`)
        next(DENYSOFT, refusal('storage_temporary'))
    }
}

// The header block as single lines (continuations separate), for the core's scanner.
function header_lines(transaction) {
    const list = transaction.header?.header_list || []
    const lines = list.join('').split(/\r?\n/)
    while (lines.length && lines[lines.length - 1] === '') lines.pop()
    return lines
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

async function deliver(plugin, connection) {
    const st = state_of(connection)
    const txn = connection.transaction
    const t = txn.notes.amtp
    const scan = native.scanHeader(header_lines(txn), plugin.settings.hostname)
    if (scan.mpcField) return { reason: 'mpc_header_present' }
    // A field claiming our authserv-id is a forgery (RFC 8601 s5). Haraka removes fields
    // by name only, so then every Authentication-Results field goes; ours comes after.
    if (scan.forgedResults) {
        // Haraka's remove_header misses the obsolete "Name :" spelling, which the core
        // (and many readers) still take for the field: those go from the list in place
        // (the message stream holds the same array).
        const list = txn.header.header_list
        for (let i = list.length - 1; i >= 0; i--) {
            if (/^authentication-results[ \t]*:/i.test(list[i])) list.splice(i, 1)
        }
        txn.remove_header('Authentication-Results')
        connection.lognotice(plugin, kv({ event: 'headers', session: connection.uuid,
            removed: 'Authentication-Results', forged_results: scan.forgedResults }))
    }
    if (scan.carriers.length > 1) return { reason: 'mpc_duplicate' }
    if (scan.carriers.length === 1) {
        const parsed = native.parseMpc(scan.carriers[0])
        if (!parsed.ok) return { reason: parsed.reason }
        if (t.mpc && parsed.value !== t.mpc) return { reason: 'mpc_conflict' }
        txn.remove_header('AMTP-MPC')
        if (!t.mpc) {
            // Carried in the header: the rules of MAIL and RCPT apply now, to the whole message.
            const site = site_of(plugin, connection)
            t.mpc = parsed.value
            if (!site.mailAllows(t.mpc)) return { reason: 'mpc_denied' }
            for (const r of [...t.recipients, ...t.remote]) {
                if (!site.recipientAllows(r.address, t.mpc)) return { reason: 'mpc_denied' }
            }
        }
    } else if (!t.mpc) {
        return { reason: 'mpc_missing' }
    }
    const trace = site_of(plugin, connection).traceFields({
        ehloName: st.ehlo_name,
        peerIp: connection.remote.ip,
        ptrName: st.ptr_name,
        identity: st.identity,
        mpc: t.mpc,
        sessionId: connection.uuid,
        recipient: t.recipients.length + t.remote.length === 1 ? [...t.recipients, ...t.remote][0].address : '',
        tlsVersion: connection.tls?.cipher?.version || '',
        tlsCipher: connection.tls?.cipher?.name || '',
    })
    const body = await message_data(txn)
    const parts = [trace, native.mpcField(t.mpc), body]
    // The core's rule (settle_delivery): nothing durable may be refused (the client's
    // retry would deliver it twice), nothing may be acknowledged that is not durable.
    // Haraka has no queue of its own to carry a failed recipient: Maildir copies, which
    // can be taken back, are, and the whole message gets 451, so that the retry
    // delivers each recipient once. Copies an LMTP agent took cannot be taken back:
    // the failed recipients are then reported to the sender in an RFC 3464 bounce sent
    // through the relay sidecar's queue, and the client hears 250. Maildir copies go
    // first, the relay hand-off after them.
    const outcomes = t.recipients.length ? await deliver_local(plugin, t, parts, body) : []
    const settled = native.settleDelivery(outcomes, false)
    const size = body.length
    if (settled.reply !== 'none') return { reason: settled.reply, detail: settled.detail, size }
    const delivered = outcomes.filter((o) => o.status === 'delivered')
    const failed = outcomes.filter((o) => o.status !== 'delivered')
    const by_agent = delivered.some((o) => !o.path)
    const undo = (why) => {
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
        // A copy that cannot be taken back may be delivered again: preferred to a loss.
        return { reason: 'storage_temporary', size,
            detail: `${why}; ${kept.length ? `copies kept (may be delivered again): ${kept.join(',')}` : 'local copies taken back'}` }
    }
    if (settled.carry && !by_agent) return undo(`local delivery: ${settled.detail}`)
    if (t.remote.length) {
        // Relaying: no MPC field (the next hop gets MPC= on MAIL, draft s5.2).
        try {
            const replies = await lmtp.handoff(plugin.relay, {
                ehlo: plugin.settings.hostname,
                sender: t.sender,
                mpc: t.mpc,
                recipients: t.remote.map((r) => r.address),
                data: Buffer.concat([Buffer.from(trace, 'utf8'), body]),
            })
            const bad = replies.find((r) => !r || r.code < 200 || r.code >= 300)
            if (bad) return undo(`relay ${bad.code} ${bad.text}`)
        } catch (err) {
            return undo(`relay: ${err.message}`)
        }
    }
    if (!settled.carry) return { reason: 'none', size }
    const carried = `carried=${failed.map((o) => o.recipient).join(',')}`
    if (!t.sender) return { reason: 'none', size, detail: `${carried} bounce=dropped (null sender: no bounce of a bounce)` }
    if (!plugin.relay) return undo(`${settled.detail}; no relay sidecar to send the bounce`)
    try {
        const report = native.bounceMessage(plugin.settings.hostname, connection.transaction.uuid, t.sender,
            failed.map((o) => ({ recipient: o.recipient, reply: o.reply })), [trace, body])
        const replies = await lmtp.handoff(plugin.relay, {
            ehlo: plugin.settings.hostname,
            sender: '',
            mpc: 'net/autoresponse',
            recipients: [t.sender],
            data: Buffer.from(report, 'utf8'),
        })
        const bad = replies.find((r) => !r || r.code < 200 || r.code >= 300)
        if (bad) return undo(`bounce ${bad.code} ${bad.text}`)
    } catch (err) {
        return undo(`bounce: ${err.message}`)
    }
    return { reason: 'none', size, detail: `${carried} bounce=queued ${settled.detail}` }
}

// One outcome per local recipient, in order: {recipient, status, diskFull, reply, path}.
async function deliver_local(plugin, t, parts, body) {
    const target = plugin.settings.delivery.lmtp
    if (target) {
        // delivery.lmtp: the agent stores; its reply for each recipient decides that one.
        let replies
        try {
            replies = await lmtp.deliver(target, {
                lhlo: plugin.settings.hostname,
                sender: t.sender,
                recipients: t.recipients.map((r) => r.address),
                data: Buffer.concat([Buffer.from(parts[0] + parts[1], 'utf8'), body]),
            })
        } catch (err) {
            return t.recipients.map((r) => ({ recipient: r.address, status: 'temporary', reply: err.message }))
        }
        return t.recipients.map((r, i) => {
            const x = replies[i]
            const status = !x ? 'temporary' : x.code >= 200 && x.code < 300 ? 'delivered' : x.code >= 500 ? 'permanent' : 'temporary'
            // The agent's reply first: the bounce takes its enhanced status code from there.
            return { recipient: r.address, status, reply: x ? `${x.code} ${x.text} (LMTP)` : 'LMTP: no reply' }
        })
    }
    const root = plugin.settings.delivery.maildirRoot
    // Each local recipient gets its own durable copy; the 250 waits for all of them.
    const stored = await Promise.allSettled(t.recipients.map((r) => native.storeInMaildir(root, r.domain, r.local, parts)))
    return stored.map((st, i) => {
        const recipient = t.recipients[i].address
        if (st.status === 'fulfilled') return { recipient, status: 'delivered', path: st.value.path }
        const err = st.reason
        return { recipient, status: err.temporary === false ? 'permanent' : 'temporary',
            diskFull: err.code === 'storage_full', reply: err.message }
    })
}

exports.hook_data_post = function (next, connection) {
    const plugin = this
    const txn = connection.transaction
    if (!txn?.notes?.amtp) return next(DENY, refusal('bad_sequence'))
    deliver(plugin, connection)
        .then((d) => {
            const t = txn.notes.amtp
            connection.lognotice(plugin, kv({ event: 'message', session: connection.uuid,
                result: d.reason === 'none' ? 'accepted' : 'fail', reason: d.reason, mpc: t.mpc, sender: t.sender,
                recipients: [...t.recipients, ...t.remote].map((r) => r.address).join(','), size: d.size, detail: d.detail }))
            if (d.reason !== 'none') {
                const reply = native.replyFor(d.reason)
                return next(reply.code >= 500 ? DENY : DENYSOFT, dsn_of(reply))
            }
            t.delivered = true
            next()
        })
        .catch((err) => {
            connection.logerror(plugin, `amtp data_post: ${err.stack || err.message}`)
            next(DENYSOFT, refusal('storage_temporary'))
        })
}

// Delivery already happened (fsync'ed) in data_post; the queue hook only acknowledges.
exports.hook_queue = function (next, connection) {
    const t = connection.transaction?.notes?.amtp
    if (!t?.delivered) return next(DENYSOFT, refusal('storage_temporary'))
    next(OK, positive(250, '2.0.0', `Message accepted, id ${connection.transaction.uuid}`))
}
