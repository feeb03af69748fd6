'use strict'
// The Haraka plugin's hooks against stand-in connection objects: each hook answers with
// the core's reply and always calls next() exactly once, also on bad input.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const constants = require('haraka-constants')
const { tempDir, pki, writeConfig } = require('./support/helpers')

function loadPlugin(t, { relay = false } = {}) {
    const dir = tempDir(t)
    const p = pki()
    // delivery.recipients = mailbox: bob's Maildir exists, nobody else's.
    require('node:fs').mkdirSync(path.join(dir, 'mail', 'b.test', 'bob'), { recursive: true })
    const policy = writeConfig(dir, `<amtp-policy><advertise><deny mpc="*/optout"/></advertise>
  <recipient address="nocom@c.test"><deny mpc="com/*"/></recipient></amtp-policy>
`, 'policy.xml')
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
    // The relay sidecar is not started here; the session only needs to know there is one.
    if (relay) plugin.relay = { host: '127.0.0.1', port: 9 }
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
        local: { ip: '127.0.0.3', port },
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

// A connection through connect_init (its session made, its chain on its way to the core).
async function connected(plugin, chain, options) {
    const conn = connection(chain, options)
    await run(plugin, 'hook_connect_init', conn)
    return conn
}

// A command line through its hook: Haraka's current_line is what the session reads.
async function command(plugin, conn, hook, line) {
    conn.current_line = line
    return run(plugin, hook, conn, [])
}

test('HELO is refused with 504 5.5.1 and its log line', async (t) => {
    const { plugin, pki: p } = loadPlugin(t)
    const conn = await connected(plugin, p.chain('client.chain.pem'))
    const [code, msg] = await command(plugin, conn, 'hook_helo', 'HELO mx.a.test')
    assert.equal(code, constants.deny)
    assert.equal(msg.code, 504)
    assert.match(msg.reply, /^5\.5\.1 /)
    assert.ok(conn.log.some((l) => /^event=helo .*reason=helo_refused/.test(l)))
})

test('EHLO on the private listener binds the certificate, skips the PTR, and the EHLO reply is the core\'s', async (t) => {
    const { plugin, pki: p } = loadPlugin(t)
    const conn = await connected(plugin, p.chain('private.chain.pem'), { port: 2627, ip: '127.0.0.5' })
    const [code] = await command(plugin, conn, 'hook_ehlo', 'EHLO host1.customers.isp.test')
    assert.equal(code, undefined)
    assert.equal(conn.notes.amtp.session.authenticated, true)
    await run(plugin, 'hook_capabilities', conn)
    assert.deepEqual(conn.capabilities, ['mx.b.test greets host1.customers.isp.test', 'MPC DENY=*/optout', 'PIPELINING',
        '8BITMIME', 'SIZE 26214400', 'ENHANCEDSTATUSCODES'])
    assert.ok(conn.log.some((l) => /^event=tls session=TEST-1 tls=TLSv1\.3 cert=verified/.test(l)))
    assert.ok(conn.log.some((l) => /^event=ehlo .*result=pass reason=none ehlo=host1\.customers\.isp\.test/.test(l)))
})

test('EHLO refusals carry the core reply and are logged with their reason', async (t) => {
    const { plugin, pki: p } = loadPlugin(t)
    const conn = await connected(plugin, p.chain('client.chain.pem'))
    const [code, msg] = await command(plugin, conn, 'hook_ehlo', 'EHLO other.a.test')
    assert.equal(code, constants.deny)
    assert.equal(msg.code, 504)
    assert.equal(msg.reply, '5.7.1 Authentication failed: EHLO name not in client certificate')
    assert.ok(conn.log.some((l) => /reason=ehlo_not_in_cert/.test(l)))
    const none = await connected(plugin, [])
    const [, msg2] = await command(plugin, none, 'hook_ehlo', 'EHLO mx.a.test')
    assert.equal(msg2.reply, '5.7.1 Authentication failed: no client certificate')
    const [, msg3] = await command(plugin, await connected(plugin, []), 'hook_ehlo', 'EHLO mx.a.test extra')
    assert.equal(msg3.code, 501)
})

test('a PTR lookup that times out is 451 4.4.3, never a permanent refusal', async (t) => {
    const { plugin, pki: p } = loadPlugin(t)
    const conn = await connected(plugin, p.chain('client.chain.pem'))
    const [code, msg] = await command(plugin, conn, 'hook_ehlo', 'EHLO mx.a.test')
    assert.equal(code, constants.denysoft)
    assert.equal(msg.code, 451)
    assert.match(msg.reply, /^4\.4\.3 /)
})

test('MAIL and RCPT answer as amtpd, and never throw on odd input', async (t) => {
    const { plugin, pki: p } = loadPlugin(t)
    const conn = await connected(plugin, p.chain('private.chain.pem'), { port: 2627, ip: '127.0.0.5' })
    const [, before] = await command(plugin, conn, 'hook_mail', 'MAIL FROM:<a@a.test> MPC=per/individual')
    assert.equal(before.code, 503)
    await command(plugin, conn, 'hook_ehlo', 'EHLO host1.customers.isp.test')
    const mail = async (line) => (await command(plugin, conn, 'hook_mail', line))[1]
    assert.equal((await mail('MAIL FROM:<a@a.test>')).code, 555)
    assert.equal((await mail('MAIL FROM:<a@a.test> MPC=per')).code, 501)
    assert.equal((await mail('MAIL FROM:<a@a.test> MPC=com/optout')).code, 550)
    // SIZE before MPC, as the rulebook checks them.
    assert.equal((await mail('MAIL FROM:<a@a.test> SIZE=999999999 MPC=per')).code, 552)
    const [ok, accepted] = await command(plugin, conn, 'hook_mail', 'MAIL FROM:<a@a.test> MPC=per/individual')
    assert.deepEqual([ok, accepted.code, accepted.reply], [constants.ok, 250, '2.1.0 Sender OK'])
    const rcpt = async (line) => (await command(plugin, conn, 'hook_rcpt', line))[1]
    assert.match((await rcpt('RCPT TO:<carl@c.test>')).reply, /^5\.7\.1 Relaying denied/)
    assert.equal((await rcpt('RCPT TO:<bob@b.test>')).code, 250)
    assert.match((await rcpt('RCPT TO:<ghost@b.test>')).reply, /^5\.1\.1 Recipient address unknown/)
    assert.equal((await rcpt('RCPT TO:')).code, 501)
    await run(plugin, 'hook_rset', conn)
    assert.equal(conn.notes.amtp.session.inTransaction, false)
    const [code2] = await run(plugin, 'hook_data_post', { ...conn, transaction: null })
    assert.equal(code2, constants.denysoft)
})

test('with the relay sidecar, a remote recipient on a private listener meets its MPC rules', async (t) => {
    const { plugin, pki: p } = loadPlugin(t, { relay: true })
    const conn = await connected(plugin, p.chain('private.chain.pem'), { port: 2627, ip: '127.0.0.5' })
    await command(plugin, conn, 'hook_ehlo', 'EHLO host1.customers.isp.test')
    await command(plugin, conn, 'hook_mail', 'MAIL FROM:<cust@b.test> MPC=com/optin')
    assert.equal((await command(plugin, conn, 'hook_rcpt', 'RCPT TO:<carl@c.test>'))[1].code, 250)
    const [code, msg] = await command(plugin, conn, 'hook_rcpt', 'RCPT TO:<nocom@c.test>')
    assert.deepEqual([code, msg.code, msg.reply], [constants.deny, 550, '5.7.1 MPC policy violation'])
    assert.ok(conn.log.some((l) => /^event=rcpt .*reason=mpc_denied rcpt=nocom@c\.test/.test(l)))
    // The public listener never relays.
    const pub = await connected(plugin, p.chain('client.chain.pem'))
    assert.equal(pub.notes.amtp.session.listener, 'public')
})
