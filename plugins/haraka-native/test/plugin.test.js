'use strict'
// The Haraka plugin's hooks against stand-in connection objects: each hook answers with
// the core's reply and always calls next() exactly once, also on bad input.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const constants = require('haraka-constants')
const { tempDir, pki, writeConfig } = require('./support/helpers')

function loadPlugin(t) {
    const dir = tempDir(t)
    const p = pki()
    // delivery.recipients = mailbox: bob's Maildir exists, nobody else's.
    require('node:fs').mkdirSync(path.join(dir, 'mail', 'b.test', 'bob'), { recursive: true })
    const policy = writeConfig(dir, '<amtp-policy><advertise><deny mpc="*/optout"/></advertise></amtp-policy>\n', 'policy.xml')
    const ini = writeConfig(dir, `hostname = mx.b.test
[listen]
public = 127.0.0.3:2626
private = 127.0.0.3:2627
# MAIL without MPC= is refused at once (no AMTP-MPC header carrier).
header-carrier = false
[tls]
certificate = ${p.file('server-b.chain.pem')}
key = ${p.file('server-b.key')}
trusted-ca = ${p.file('public-root.pem')}
private-ca = ${p.file('private-root.pem')}
[dns]
resolver = 127.0.0.1@9
timeout = 1s
nodefault-zone = 127.in-addr.arpa.
[delivery]
local-domain = b.test
maildir-root = ${path.join(dir, 'mail')}
[policy]
file = ${policy}
`)
    const plugin = Object.assign({}, require('..'), {
        config: { get: () => ({ main: { config: ini } }) },
        lognotice() {},
        logcrit() {},
        logerror() {},
    })
    plugin.register()
    return { plugin, pki: p }
}

// A connection as Haraka hands it to hooks, with the certificate chain Node would expose.
function connection(chain, { port = 2626, ip = '127.0.0.2', line = '' } = {}) {
    let cert = null
    for (const der of [...chain].reverse()) {
        const c = { raw: der, fingerprint256: der.toString('hex').slice(-64) }
        c.issuerCertificate = cert || c
        cert = c
    }
    const log = []
    return {
        uuid: 'TEST-1',
        notes: {},
        remote: { ip },
        local: { port },
        tls: { enabled: true, cipher: { version: 'TLSv1.3', name: 'TLS_AES_128_GCM_SHA256' } },
        client: { getPeerCertificate: () => cert || {} },
        current_line: line,
        transaction: { notes: {}, uuid: 'TEST-1.1' },
        capabilities: ['mx.b.test Hello', 'PIPELINING', '8BITMIME', 'SIZE 1000'],
        log,
        lognotice: (_p, l) => log.push(l),
        logerror: (_p, l) => log.push(l),
        set() {},
    }
}

// Runs a hook and resolves with [code, msg] of its one next() call.
function run(plugin, hook, conn, ...args) {
    return new Promise((resolve, reject) => {
        let calls = 0
        plugin[hook].call(plugin, (code, msg) => {
            if (++calls > 1) reject(new Error(`${hook} called next twice`))
            else setImmediate(() => resolve([code, msg]))
        }, conn, ...args)
    })
}

test('HELO is refused with 504 5.5.1', async (t) => {
    const { plugin, pki: p } = loadPlugin(t)
    const [code, msg] = await run(plugin, 'hook_helo', connection(p.chain('client.chain.pem')), 'mx.a.test')
    assert.equal(code, constants.deny)
    assert.equal(msg.code, 504)
    assert.match(msg.reply, /^5\.5\.1 /)
})

test('EHLO on the private listener binds the certificate and skips the PTR', async (t) => {
    const { plugin, pki: p } = loadPlugin(t)
    const conn = connection(p.chain('private.chain.pem'), { port: 2627, ip: '127.0.0.5' })
    const [code] = await run(plugin, 'hook_ehlo', conn, 'host1.customers.isp.test')
    assert.equal(code, undefined)
    assert.equal(conn.notes.amtp.authenticated, true)
    await run(plugin, 'hook_capabilities', conn)
    assert.deepEqual(conn.capabilities.slice(0, 2), ['mx.b.test Hello', 'MPC DENY=*/optout'])
    assert.ok(conn.capabilities.includes('ENHANCEDSTATUSCODES'))
})

test('EHLO refusals carry the core reply and are logged with their reason', async (t) => {
    const { plugin, pki: p } = loadPlugin(t)
    const conn = connection(p.chain('client.chain.pem'))
    const [code, msg] = await run(plugin, 'hook_ehlo', conn, 'other.a.test')
    assert.equal(code, constants.deny)
    assert.equal(msg.code, 504)
    assert.equal(msg.reply, '5.7.1 Authentication failed: EHLO name not in client certificate')
    assert.ok(conn.log.some((l) => /reason=ehlo_not_in_cert/.test(l)))
    const none = connection([])
    const [, msg2] = await run(plugin, 'hook_ehlo', none, 'mx.a.test')
    assert.equal(msg2.reply, '5.7.1 Authentication failed: no client certificate')
    const [, msg3] = await run(plugin, 'hook_ehlo', connection([]), '')
    assert.equal(msg3.code, 501)
})

test('a PTR lookup that times out is 451 4.4.3, never a permanent refusal', async (t) => {
    const { plugin, pki: p } = loadPlugin(t)
    const [code, msg] = await run(plugin, 'hook_ehlo', connection(p.chain('client.chain.pem')), 'mx.a.test')
    assert.equal(code, constants.deny)
    assert.equal(msg.code, 451)
    assert.match(msg.reply, /^4\.4\.3 /)
})

test('MAIL and RCPT answer as amtpd, and never throw on odd input', async (t) => {
    const { plugin, pki: p } = loadPlugin(t)
    const conn = connection(p.chain('private.chain.pem'), { port: 2627, ip: '127.0.0.5' })
    const [, before] = await run(plugin, 'hook_mail', conn, [])
    assert.equal(before.code, 503)
    await run(plugin, 'hook_ehlo', conn, 'host1.customers.isp.test')
    const mail = async (line) => {
        conn.current_line = line
        return (await run(plugin, 'hook_mail', conn, []))[1]
    }
    assert.equal((await mail('MAIL FROM:<a@a.test>')).code, 555)
    assert.equal((await mail('MAIL FROM:<a@a.test> MPC=per')).code, 501)
    assert.equal((await mail('MAIL FROM:<a@a.test> MPC=com/optout')).code, 550)
    assert.equal((await mail('MAIL FROM:<a@a.test> MPC=per/individual')).code, 250)
    const rcpt = async (user, host) => (await run(plugin, 'hook_rcpt', conn, [{ user, host }]))[1]
    assert.match((await rcpt('carl', 'c.test')).reply, /^5\.7\.1 Relaying denied/)
    assert.equal((await rcpt('bob', 'b.test')).code, 250)
    assert.match((await rcpt('ghost', 'b.test')).reply, /^5\.1\.1 Recipient address unknown/)
    const [code] = await run(plugin, 'hook_rcpt', conn, [null])
    assert.equal(code, constants.denysoft)
    const [code2] = await run(plugin, 'hook_data_post', { ...conn, transaction: null })
    assert.equal(code2, constants.deny)
})
