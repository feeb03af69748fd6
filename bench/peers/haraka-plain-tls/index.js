'use strict'
// Figure 3c's baseline (bench/run.py): Haraka as an operator runs it without AMTP, on
// its implicit-TLS port with Node requiring and verifying the client certificate
// (tls.ini requestCert and rejectUnauthorized, our CA). This plugin only does what
// any inbound Haraka needs: it accepts recipients of the local domains (config/host_list)
// and stores each message in the Maildir before the 250, with the very code the amtp
// plugin uses (the addon's storeInMaildir: write, fsync, link into new/, fsync of the
// directory), so the ratio against the amtp plugin measures the AMTP checks and nothing
// else. Reverse DNS is answered without a lookup, as the amtp plugin does (its own
// lookup goes through the core): nothing leaves loopback.
const path = require('node:path')
const { createRequire } = require('node:module')

// Resolve the addon and Haraka's constants from the Haraka adapter's package.
const adapter = createRequire(path.join(__dirname, '..', '..', '..', 'plugins', 'haraka-native', 'package.json'))
const native = adapter('./lib/native')
const { ok: OK, deny: DENY, denysoft: DENYSOFT } = adapter('haraka-constants')

exports.register = function () {
    this.maildirRoot = process.env.AMTP_BENCH_MAILDIR
    this.domains = new Set(this.config.get('host_list', 'list').map((d) => d.toLowerCase()))
}

exports.hook_lookup_rdns = function (next) {
    next(OK, 'Unknown')
}

exports.hook_rcpt = function (next, connection, params) {
    try {
        const host = (params[0].host || '').toLowerCase()
        next(this.domains.has(host) ? OK : DENY)
    } catch (err) {
        connection.logerror(this, `bench rcpt: ${err.message}`)
        next(DENYSOFT)
    }
}

exports.hook_queue = function (next, connection) {
    const plugin = this
    const txn = connection.transaction
    try {
        txn.message_stream.get_data((data) => {
            const body = Buffer.isBuffer(data) ? data : Buffer.from(data)
            Promise.all(txn.rcpt_to.map((r) => native.storeInMaildir(plugin.maildirRoot, r.host.toLowerCase(), r.user, [body])))
                .then(() => next(OK))
                .catch((err) => {
                    connection.logerror(plugin, `bench queue: ${err.message}`)
                    next(DENYSOFT)
                })
        })
    } catch (err) {
        connection.logerror(plugin, `bench queue: ${err.message}`)
        next(DENYSOFT)
    }
}
