'use strict'
// The addon's API: pure decisions, configuration errors, certificate verification,
// Maildir storage and bad input. Run: node --test test/ (AMTP_ADDON names another build).
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const amtp = require('../lib/native')
const { tempDir, pki, writeConfig } = require('./support/helpers')

test('replyFor gives the core reply of each reason, and refuses unknown reasons', () => {
    assert.deepEqual(amtp.replyFor('helo_refused').code, 504)
    assert.equal(amtp.replyFor('helo_refused').enhanced, '5.5.1')
    const r = amtp.replyFor('ptr_mismatch')
    assert.deepEqual([r.code, r.enhanced, r.text], [504, '5.7.1', 'Authentication failed: PTR record does not match EHLO name'])
    assert.equal(amtp.replyFor('dns_temporary').code, 451)
    assert.equal(amtp.replyFor('mpc_denied').text, 'MPC policy violation')
    assert.throws(() => amtp.replyFor('no_such_reason'), TypeError)
    assert.throws(() => amtp.replyFor(42), TypeError)
    assert.throws(() => amtp.replyFor(), TypeError)
})

test('parseMpc accepts defined values case-insensitively and names what is wrong', () => {
    assert.deepEqual(amtp.parseMpc('PER/Individual'), { ok: true, value: 'per/individual', reason: 'none' })
    assert.equal(amtp.parseMpc('per').reason, 'mpc_malformed')
    assert.equal(amtp.parseMpc('spam/individual').reason, 'mpc_undefined')
    assert.equal(amtp.parseMpc('mpc/optout').ok, false)
    assert.equal(amtp.parseMpc('').ok, false)
    assert.throws(() => amtp.parseMpc(null), TypeError)
})

test('mailCommand judges MAIL as amtpd does', () => {
    const ok = amtp.mailCommand('FROM:<alice@a.test> MPC=per/individual BODY=8BITMIME SIZE=100')
    assert.equal(ok.ok, true)
    assert.equal(ok.sender, 'alice@a.test')
    assert.equal(ok.mpc, 'per/individual')
    assert.equal(ok.parameters.SIZE, '100')
    assert.equal(amtp.mailCommand('FROM:<> MPC=net/autoresponse').sender, '')
    assert.equal(amtp.mailCommand('FROM:<alice@a.test>').reason, 'mpc_missing')
    assert.equal(amtp.mailCommand('FROM:<alice@a.test>', false).ok, true)
    assert.equal(amtp.mailCommand('FROM:<alice@a.test> MPC=per/individual MPC=com/optin').reason, 'mpc_duplicate')
    assert.equal(amtp.mailCommand('FROM:<alice@a.test> MPC=per').reason, 'mpc_malformed')
    assert.equal(amtp.mailCommand('FROM:<alice@a.test> MPC=spam/individual').reason, 'mpc_undefined')
    const unknown = amtp.mailCommand('FROM:<alice@a.test> MPC=per/individual XYZ=1')
    assert.deepEqual([unknown.reason, unknown.detail], ['unknown_parameter', 'XYZ'])
    assert.equal(amtp.mailCommand('FROM:<alice@a.test> SIZE=lots MPC=per/individual').reason, 'syntax_error')
    assert.equal(amtp.mailCommand('FROM alice').reason, 'syntax_error')
    assert.equal(amtp.mailCommand('FROM:<not an address> MPC=per/individual').ok, false)
    assert.throws(() => amtp.mailCommand(), TypeError)
})

test('names: normalisation, EHLO binding and the PTR verdict', () => {
    assert.equal(amtp.normalizeHostName('MX.A.Test.'), 'mx.a.test')
    assert.equal(amtp.normalizeHostName('not a name'), null)
    assert.equal(amtp.checkEhlo(['mx.a.test'], 'MX.a.test'), 'none')
    assert.equal(amtp.checkEhlo(['mx.a.test'], 'other.a.test'), 'ehlo_not_in_cert')
    assert.equal(amtp.checkEhlo(['*.a.test'], 'mx.a.test'), 'ehlo_not_in_cert')
    assert.equal(amtp.checkEhlo(['mx.a.test'], 'localhost'), 'ehlo_syntax')
    assert.equal(amtp.checkEhlo(['mx.a.test'], '[127.0.0.1]'), 'ehlo_syntax')
    assert.throws(() => amtp.checkEhlo('mx.a.test', 'mx.a.test'), TypeError)
    assert.throws(() => amtp.checkEhlo([1], 'mx.a.test'), TypeError)
    const answer = { status: 'answer', names: ['mx.a.test'] }
    assert.equal(amtp.checkPtr(answer, 'mx.a.test'), 'none')
    assert.equal(amtp.checkPtr(answer, 'other.a.test'), 'ptr_mismatch')
    assert.equal(amtp.checkPtr({ status: 'negative', names: [] }, 'mx.a.test'), 'ptr_missing')
    assert.equal(amtp.checkPtr({ status: 'temporary', names: [] }, 'mx.a.test'), 'dns_temporary')
    assert.throws(() => amtp.checkPtr({ status: 'maybe' }, 'mx.a.test'), TypeError)
    assert.throws(() => amtp.checkPtr(null, 'mx.a.test'), TypeError)
    assert.deepEqual(amtp.parseMailbox('Bob@B.Test'), { local: 'Bob', domain: 'b.test', address: 'Bob@b.test' })
    assert.equal(amtp.parseMailbox('no-at-sign'), null)
})

test('scanHeader finds an MPC field and reads and drops the AMTP-MPC carrier', () => {
    const plain = amtp.scanHeader(['Subject: x', 'From: a@a.test'])
    assert.deepEqual([plain.mpcField, plain.carriers], [false, []])
    assert.equal(amtp.scanHeader(['Subject: x', 'mpc: com/optout']).mpcField, true)
    const carried = amtp.scanHeader(['AMTP-MPC: per/individual', 'Subject: x'])
    assert.deepEqual(carried.carriers, ['per/individual'])
    assert.deepEqual(carried.keep, [false, true])
    assert.equal(amtp.scanHeader(['X-Note: MPC: not a field']).mpcField, false)
    assert.equal(amtp.mpcField('com/optin'), 'MPC: com/optin\r\n')
    assert.throws(() => amtp.mpcField('com/bulk'), (e) => e.code === 'mpc_undefined')
    assert.throws(() => amtp.scanHeader('Subject: x'), TypeError)
})

test('scanHeader finds forged Authentication-Results fields of our authserv-id', () => {
    const lines = ['Authentication-Results:', '\tmx.b.test; x-amtp=pass', 'Authentication-Results: mx.a.test; spf=pass',
        'Authentication-Results: (c)', '\tmx.c.test; dkim=pass', 'Subject: x']
    const scan = amtp.scanHeader(lines, 'mx.b.test')
    assert.equal(scan.forgedResults, 1)
    assert.deepEqual(scan.keep, [false, false, true, true, true, true])
    assert.equal(amtp.scanHeader(lines).forgedResults, 0)  // no hostname: nothing is ours
})

test('Site reports configuration errors with the file, line and key', (t) => {
    const dir = tempDir(t)
    assert.throws(() => new amtp.Site(path.join(dir, 'missing.ini')), (e) => e.code === 'config_error')
    const bad = writeConfig(dir, 'hostname = mx.b.test\n[limits]\nmax-recipients = many\n')
    assert.throws(() => new amtp.Site(bad), (e) => e.code === 'config_error' && e.line === 3 && /max-recipients/.test(e.key))
    const badPolicy = writeConfig(dir, '<amtp-policy><advertise><deny mpc="*/bulk"/></advertise></amtp-policy>\n', 'p.xml')
    const withPolicy = writeConfig(dir, `hostname = mx.b.test\n[policy]\nfile = ${badPolicy}\n`, 'p.ini')
    assert.throws(() => new amtp.Site(withPolicy), (e) => e.code === 'config_error' && /p\.xml/.test(e.message))
    assert.throws(() => new amtp.Site(), TypeError)
    assert.throws(() => amtp.Site('x'), TypeError)
})

function site(t, extra = '') {
    const dir = tempDir(t)
    const policy = writeConfig(dir, `<amtp-policy>
  <advertise> <deny mpc="*/optout"/> </advertise>
  <recipient address="nocom@b.test"> <deny mpc="com/*"/> </recipient>
  <sender address="shop@b.test" mpc="com/customer"/>
</amtp-policy>
`, 'policy.xml')
    const p = pki()
    const ini = writeConfig(dir, `hostname = mx.b.test
[listen]
public = 127.0.0.3:2626
private = 127.0.0.3:2627
[tls]
certificate = ${p.file('server-b.chain.pem')}
key = ${p.file('server-b.key')}
trusted-ca = ${p.file('public-root.pem')}
private-ca = ${p.file('private-root.pem')}
[delivery]
local-domain = b.test
maildir-root = ${path.join(dir, 'mail')}
[policy]
file = ${policy}
${extra}`)
    return { site: new amtp.Site(ini), dir, pki: p }
}

test('Site exposes the settings and the policy decisions', (t) => {
    const { site: s } = site(t)
    assert.equal(s.settings.hostname, 'mx.b.test')
    assert.deepEqual(s.settings.listen.public.map((e) => e.port), [2626])
    assert.deepEqual(s.settings.delivery.localDomains, ['b.test'])
    assert.equal(s.ehloLine(), 'MPC DENY=*/optout')
    assert.equal(s.mailAllows('per/individual'), true)
    assert.equal(s.mailAllows('com/optout'), false)
    assert.equal(s.mailAllows('mpc/individual'), true)
    assert.equal(s.recipientAllows('nocom@b.test', 'com/optin'), false)
    assert.equal(s.recipientAllows('bob@b.test', 'com/optin'), true)
    assert.equal(s.isLocalDomain('B.TEST'), true)
    assert.equal(s.isLocalDomain('c.test'), false)
    assert.equal(s.senderMpc('shop@b.test'), 'com/customer')
    assert.equal(s.senderMpc('nobody@b.test'), null)
    assert.throws(() => s.mailAllows('per'), (e) => e.code === 'mpc_malformed' && e.reply.code === 501)
})

test('verifyClient: a good chain gives the identity, refusals carry the reason', async (t) => {
    const { site: s, pki: p } = site(t)
    const id = await s.verifyClient(p.chain('client.chain.pem'), 'public', '127.0.0.2')
    assert.ok(id.names.includes('mx.a.test'))
    assert.equal(id.sha256, p.text('client.sha256'))
    assert.equal(id.trust, 'public_ca')
    const serverOnly = await s.verifyClient(p.chain('server-only.chain.pem'), 'public', '127.0.0.9')
    assert.ok(serverOnly.names.includes('mx.c.test'))
    const reason = (chain, listener = 'public', ip = '127.0.0.2') =>
        s.verifyClient(chain, listener, ip).then(
            () => 'accepted',
            (e) => {
                assert.ok(e instanceof Error)
                assert.equal(e.reply.code, 504)
                return e.code
            },
        )
    assert.equal(await reason([]), 'no_client_cert')
    assert.equal(await reason(p.chain('expired.chain.pem')), 'cert_expired')
    assert.equal(await reason(p.chain('other-ca.chain.pem')), 'untrusted_issuer')
    assert.equal(await reason(p.chain('private.chain.pem')), 'untrusted_issuer')
    assert.equal(await reason(p.chain('client.chain.pem'), 'private'), 'untrusted_issuer')
    assert.equal(await reason(p.chain('private.chain.pem'), 'private', '127.0.0.5'), 'accepted')
    assert.equal(await reason([Buffer.from('not a certificate')]), 'cert_invalid')
    assert.throws(() => s.verifyClient('x', 'public', '127.0.0.2'), TypeError)
    assert.throws(() => s.verifyClient([], 'somewhere', '127.0.0.2'), TypeError)
    assert.throws(() => s.verifyClient([], 'public', 'not-an-ip'), TypeError)
    assert.throws(() => s.verifyClient([42], 'public', '127.0.0.2'), TypeError)
})

test('traceFields writes Received and Authentication-Results naming the identity and MPC', async (t) => {
    const { site: s, pki: p } = site(t)
    const identity = await s.verifyClient(p.chain('client.chain.pem'), 'public', '127.0.0.2')
    const trace = s.traceFields({ ehloName: 'mx.a.test', peerIp: '127.0.0.2', ptrName: 'mx.a.test', identity,
        mpc: 'per/individual', sessionId: 'S1', recipient: 'bob@b.test', tlsVersion: 'TLSv1.3', when: 0 })
    assert.match(trace, /^Received: from mx\.a\.test \(mx\.a\.test \[127\.0\.0\.2\]\)\r\n\tby mx\.b\.test with AMTP/)
    assert.match(trace, /mpc=per\/individual/)
    assert.match(trace, /\r\nAuthentication-Results: mx\.b\.test; x-amtp=pass/)
    assert.ok(trace.endsWith('\r\n'))
    assert.throws(() => s.traceFields({ peerIp: 'nowhere' }), TypeError)
    assert.throws(() => s.traceFields({ peerIp: '127.0.0.2', mpc: 'x/y' }), (e) => e.code === 'mpc_undefined')
    assert.throws(() => s.traceFields(), TypeError)
})

test('storeInMaildir writes the parts durably and refuses unsafe local parts', async (t) => {
    const dir = tempDir(t)
    const r = await amtp.storeInMaildir(dir, 'b.test', 'bob', ['Received: x\r\n', Buffer.from('Subject: y\r\n\r\nbody\r\n')])
    assert.ok(r.path.startsWith(path.join(dir, 'b.test', 'bob', 'new')))
    assert.equal(fs.readFileSync(r.path, 'utf8'), 'Received: x\r\nSubject: y\r\n\r\nbody\r\n')
    await assert.rejects(amtp.storeInMaildir(dir, 'b.test', '../escape', ['x']), (e) => {
        assert.equal(e.code, 'storage_temporary')
        assert.equal(e.temporary, false)
        return true
    })
    fs.writeFileSync(path.join(dir, 'file'), '')
    await assert.rejects(amtp.storeInMaildir(path.join(dir, 'file'), 'b.test', 'bob', ['x']),
        (e) => e.code === 'storage_temporary' && e.reply.code === 451)
    assert.throws(() => amtp.storeInMaildir(dir, 'b.test', 'bob', 'not a list'), TypeError)
    assert.throws(() => amtp.storeInMaildir(dir, 'b.test'), TypeError)
})
