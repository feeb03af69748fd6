'use strict'
// The addon's API: the Site, the per-connection Session over the core's rulebook (each
// stage call and its verdict), Maildir storage, configuration errors and bad input.
// Run: node --test test/ (AMTP_ADDON names another build).
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
  <recipient address="nocom@d.test"> <deny mpc="com/*"/> </recipient>
  <sender address="shop@b.test" mpc="com/customer"/>
</amtp-policy>
`, 'policy.xml')
    const p = pki()
    const ini = writeConfig(dir, `hostname = mx.b.test
[listen]
public = 127.0.0.3:2626
private = 127.0.0.3:2627
private = 0.0.0.0:2628
private = [::]:2629
[tls]
certificate = ${p.file('server-b.chain.pem')}
key = ${p.file('server-b.key')}
trusted-ca = ${p.file('public-root.pem')}
private-ca = ${p.file('private-root.pem')}
[delivery]
local-domain = b.test
maildir-root = ${path.join(dir, 'mail')}
recipients = any
[policy]
file = ${policy}
${extra}`)
    return { site: new amtp.Site(ini), dir, pki: p }
}

function session(s, { port = 2627, peer = '127.0.0.5', local = '127.0.0.3', relay = false } = {}) {
    return new amtp.Session(s, { peer, local, port, id: 'S1', relay })
}

// A private-listener session whose EHLO passed (no PTR rule there).
async function privateSession(t, options = {}) {
    const { site: s, pki: p } = site(t)
    const sess = session(s, options)
    const tls = await sess.tls(p.chain('private.chain.pem'), 'TLSv1.3', 'TLS_AES_128_GCM_SHA256')
    assert.equal(tls.reason, 'none')
    assert.equal(sess.ehlo('host1.customers.isp.test').refused, false)
    return { s, sess, p }
}

test('Site exposes the settings', (t) => {
    const { site: s } = site(t)
    assert.equal(s.settings.hostname, 'mx.b.test')
    assert.deepEqual(s.settings.listen.public.map((e) => e.port), [2626])
    assert.deepEqual(s.settings.delivery.localDomains, ['b.test'])
})

test('the listener of a session is the one of its local address and port', (t) => {
    const { site: s } = site(t)
    assert.equal(session(s, { port: 2626 }).listener, 'public')
    assert.equal(session(s, { port: 2627 }).listener, 'private')
    assert.equal(session(s, { port: 2627, local: '127.0.0.9' }).listener, 'public')
    // A wildcard endpoint matches the address the client reached.
    assert.equal(session(s, { port: 2628, local: '127.0.0.9' }).listener, 'private')
    assert.equal(session(s, { port: 2628, local: '::1', peer: '::1' }).listener, 'public')
    assert.equal(session(s, { port: 2629, local: '127.0.0.9' }).listener, 'private') // dual-stack ::
    assert.equal(session(s, { port: 2629, local: '::1', peer: '::1' }).listener, 'private')
    assert.equal(session(s, { port: 2626 }).lookupAtConnect, true)
    assert.equal(session(s, { port: 2627 }).lookupAtConnect, false)
    assert.match(session(s, { port: 2626 }).connectLog(), /^event=connect session=S1 peer=127\.0\.0\.5 listener=public/)
    assert.throws(() => new amtp.Session({}, { peer: '127.0.0.5', local: '127.0.0.3', port: 2626 }), TypeError)
    assert.throws(() => new amtp.Session(s, { peer: 'nowhere', local: '127.0.0.3', port: 2626 }), TypeError)
    assert.throws(() => new amtp.Session(s, { peer: '127.0.0.5', port: 2626 }), TypeError)
    assert.throws(() => amtp.Session(s, {}), TypeError)
})

test('tls: the core verifies the chain and the session starts over with its verdict', async (t) => {
    const { site: s, pki: p } = site(t)
    const reason = async (chain, options) => (await session(s, options).tls(chain, 'TLSv1.3', 'x')).reason
    assert.equal(await reason(p.chain('client.chain.pem'), { port: 2626, peer: '127.0.0.2' }), 'none')
    assert.equal(await reason(p.chain('server-only.chain.pem'), { port: 2626, peer: '127.0.0.9' }), 'none')
    assert.equal(await reason([], { port: 2626 }), 'no_client_cert')
    assert.equal(await reason(p.chain('expired.chain.pem'), { port: 2626 }), 'cert_expired')
    assert.equal(await reason(p.chain('other-ca.chain.pem'), { port: 2626 }), 'untrusted_issuer')
    assert.equal(await reason(p.chain('private.chain.pem'), { port: 2626 }), 'untrusted_issuer')
    assert.equal(await reason(p.chain('client.chain.pem'), { port: 2627 }), 'untrusted_issuer')
    assert.equal(await reason(p.chain('private.chain.pem'), { port: 2627 }), 'none')
    assert.equal(await reason([Buffer.from('not a certificate')], { port: 2626 }), 'cert_invalid')
    const sess = session(s, { port: 2626 })
    const r = await sess.tls(p.chain('expired.chain.pem'), 'TLSv1.3', 'x')
    assert.match(r.log, /^event=tls session=S1 tls=TLSv1\.3 cert=cert_expired/)
    const v = sess.ehlo('mx.a.test')
    assert.deepEqual([v.refused, v.code, v.enhanced, v.reason], [true, 504, '5.7.1', 'cert_expired'])
    assert.throws(() => sess.tls('x', 'TLSv1.3', 'x'), TypeError)
    assert.throws(() => sess.tls([42], 'TLSv1.3', 'x'), TypeError)
})

test('HELO is refused; EHLO binds the certificate, then the PTR on public listeners', async (t) => {
    const { site: s, pki: p } = site(t)
    const pub = session(s, { port: 2626, peer: '127.0.0.2' })
    const helo = pub.helo()
    assert.deepEqual([helo.code, helo.enhanced, helo.reason], [504, '5.5.1', 'helo_refused'])
    assert.match(helo.log, /^event=helo session=S1 peer=127\.0\.0\.2 result=fail reason=helo_refused/)
    assert.equal(pub.ehlo('mx.a.test').reason, 'no_client_cert')
    await pub.tls(p.chain('client.chain.pem'), 'TLSv1.3', 'x')
    assert.deepEqual([pub.ehlo('other.a.test').code, pub.ehlo('other.a.test').reason], [504, 'ehlo_not_in_cert'])
    assert.equal(pub.ehlo('not a name').code, 501)
    const asks = pub.ehlo('MX.A.TEST')
    assert.deepEqual([asks.refused, asks.needsPtr, asks.log], [false, true, ''])
    const mismatch = pub.ehloPtr({ status: 'answer', names: ['other.a.test'] })
    assert.deepEqual([mismatch.code, mismatch.reason], [504, 'ptr_mismatch'])
    assert.match(mismatch.log, /ptr=other\.a\.test/)
    assert.equal(pub.ehlo('mx.a.test').needsPtr, false) // the answer is kept for the session
    assert.equal(pub.authenticated, false)
    const temp = session(s, { port: 2626, peer: '127.0.0.2' })
    await temp.tls(p.chain('client.chain.pem'), 'TLSv1.3', 'x')
    assert.equal(temp.ehlo('mx.a.test').needsPtr, true)
    assert.deepEqual([temp.ehloPtr({ status: 'temporary', names: [] }).code], [451])
    assert.equal(temp.ehlo('mx.a.test').needsPtr, true) // a temporary failure is asked again
    const ok = temp.ehloPtr({ status: 'answer', names: ['mx.a.test'] })
    assert.deepEqual([ok.refused, ok.code, ok.text], [false, 250, 'mx.b.test greets mx.a.test'])
    assert.deepEqual(ok.lines, ['MPC DENY=*/optout', 'PIPELINING', '8BITMIME', 'SIZE 26214400', 'ENHANCEDSTATUSCODES'])
    assert.equal(temp.authenticated, true)
    assert.equal(temp.ptrName, 'mx.a.test')
    assert.throws(() => temp.ehloPtr({ status: 'maybe' }), TypeError)
    assert.throws(() => temp.ehloPtr(null), TypeError)
    assert.throws(() => temp.ehlo(), TypeError)
})

test('MAIL is judged by the rulebook: syntax, SIZE before MPC, the MPC and the declarations', async (t) => {
    const { sess } = await privateSession(t)
    const mail = (arg) => sess.mail(arg)
    const ok = mail('FROM:<alice@a.test> MPC=per/individual BODY=8BITMIME SIZE=100')
    assert.deepEqual([ok.refused, ok.code, ok.enhanced], [false, 250, '2.1.0'])
    assert.equal(sess.inTransaction, true)
    assert.equal(mail('FROM:<> MPC=net/autoresponse').code, 250)
    // header-carrier defaults to true: MAIL may come without MPC=.
    assert.equal(mail('FROM:<alice@a.test>').code, 250)
    assert.equal(mail('FROM:<alice@a.test> MPC=per/individual MPC=com/optin').reason, 'mpc_duplicate')
    assert.deepEqual([mail('FROM:<alice@a.test> MPC=per').code, mail('FROM:<alice@a.test> MPC=per').reason], [501, 'mpc_malformed'])
    assert.equal(mail('FROM:<alice@a.test> MPC=spam/individual').reason, 'mpc_undefined')
    assert.deepEqual([mail('FROM:<alice@a.test> MPC=com/optout').code, mail('FROM:<a@a.test> MPC=com/optout').reason], [550, 'mpc_denied'])
    const unknown = mail('FROM:<alice@a.test> MPC=per/individual XYZ=1')
    assert.deepEqual([unknown.code, unknown.reason], [555, 'unknown_parameter'])
    assert.equal(mail('FROM:<alice@a.test> SIZE=lots MPC=per/individual').reason, 'syntax_error')
    // SIZE is checked before the MPC: a message too big is refused the same way whatever its MPC.
    const big = mail('FROM:<alice@a.test> SIZE=999999999 MPC=per')
    assert.deepEqual([big.code, big.enhanced, big.reason], [552, '5.3.4', 'message_too_big'])
    assert.equal(mail('FROM alice').reason, 'syntax_error')
    assert.equal(mail('FROM:<not an address> MPC=per/individual').refused, true)
    assert.equal(sess.inTransaction, false)
    assert.match(mail('FROM:<alice@a.test> MPC=com/optout').log, /event=mail .*reason=mpc_denied mpc=com\/optout/)
    assert.throws(() => mail(), TypeError)
})

test('RCPT: relaying only with a relay sidecar, and the recipient rules for remote recipients too', async (t) => {
    const { s, p } = await privateSession(t)
    const noRelay = session(s)
    await noRelay.tls(p.chain('private.chain.pem'), 'TLSv1.3', 'x')
    noRelay.ehlo('host1.customers.isp.test')
    noRelay.mail('FROM:<cust@b.test> MPC=com/optin')
    const denied = noRelay.rcpt('TO:<far@d.test>')
    assert.deepEqual([denied.code, denied.reason], [550, 'relay_denied'])
    assert.match(denied.log, /event=rcpt .*reason=relay_denied rcpt=far@d\.test/)
    assert.equal(noRelay.rcpt('TO:<bob@b.test>').code, 250)
    assert.deepEqual(noRelay.envelope().recipients.map((r) => r.address), ['bob@b.test'])

    const relay = session(s, { relay: true })
    await relay.tls(p.chain('private.chain.pem'), 'TLSv1.3', 'x')
    relay.ehlo('host1.customers.isp.test')
    relay.mail('FROM:<cust@b.test> MPC=com/optin')
    assert.equal(relay.rcpt('TO:<far@d.test>').code, 250)
    assert.deepEqual([relay.rcpt('TO:<nocom@d.test>').code, relay.rcpt('TO:<nocom@d.test>').reason], [550, 'mpc_denied'])
    assert.equal(relay.rcpt('TO:<nocom@b.test>').reason, 'mpc_denied')
    assert.equal(relay.rcpt('TO:<bob@b.test> NOTIFY=NEVER').reason, 'unknown_parameter')
    assert.deepEqual(relay.envelope().recipients,
        [{ address: 'far@d.test', local: false, localPart: 'far', domain: 'd.test' }])
    relay.reset()
    assert.deepEqual([relay.inTransaction, relay.envelope().recipients.length], [false, 0])
    assert.equal(relay.data().reason, 'no_recipients')

    const pub = session(s, { port: 2626, relay: true })
    assert.equal(pub.rcpt('TO:<far@d.test>').reason, 'ehlo_first')
})

test('the end of the data: the header through the core scanner, trace fields, acceptance', async (t) => {
    const { sess } = await privateSession(t)
    sess.mail('FROM:<alice@a.test> MPC=per/individual')
    sess.rcpt('TO:<bob@b.test>')
    assert.equal(sess.data().code, 354)
    const header = ['Received: from x\n', 'AMTP-MPC: per/individual\n',
        'Authentication-Results:\n\tmx.b.test; x-amtp=pass\n', 'Authentication-Results: mx.a.test; spf=pass\n',
        'Subject: x\n']
    const m = sess.message({ size: 100, header })
    assert.deepEqual([m.refused, m.code, m.remove], [false, 0, [1, 2]])
    const env = sess.envelope()
    assert.deepEqual([env.sender, env.mpc, env.mpcField], ['alice@a.test', 'per/individual', 'MPC: per/individual\r\n'])
    const trace = sess.traceFields()
    assert.match(trace, /^Received: from host1\.customers\.isp\.test \(unverified \[127\.0\.0\.5\];\r\n/)
    assert.match(trace, /\r\n\tby mx\.b\.test with AMTP id S1\r\n/)
    assert.match(trace, /\r\n\tfor <bob@b\.test>; /)
    assert.match(trace, /\r\nAuthentication-Results: mx\.b\.test; x-amtp=pass/)
    const done = sess.accepted('ID1', '')
    assert.deepEqual([done.refused, done.code, done.enhanced, done.text], [false, 250, '2.0.0', 'Message accepted, id ID1'])
    assert.match(done.log, /^event=message session=S1 result=accepted reason=none mpc=per\/individual sender=alice@a\.test recipients=bob@b\.test size=100 forged_results=1/)
    assert.equal(sess.inTransaction, false)

    sess.mail('FROM:<alice@a.test> MPC=per/individual')
    sess.rcpt('TO:<bob@b.test>')
    const mpc = sess.message({ size: 10, header: ['MPC: com/optout\n'] })
    assert.deepEqual([mpc.code, mpc.reason, mpc.remove], [550, 'mpc_header_present', []])
    assert.equal(sess.inTransaction, false)
    sess.mail('FROM:<alice@a.test> MPC=per/individual')
    sess.rcpt('TO:<bob@b.test>')
    assert.equal(sess.message({ size: 10, header: ['AMTP-MPC: com/optin\n'] }).reason, 'mpc_conflict')
    sess.mail('FROM:<alice@a.test> MPC=per/individual')
    sess.rcpt('TO:<bob@b.test>')
    assert.equal(sess.message({ size: 30000000, header: [] }).reason, 'message_too_big')
    sess.mail('FROM:<alice@a.test> MPC=per/individual')
    sess.rcpt('TO:<bob@b.test>')
    assert.equal(sess.message({ size: 10, lineTooLong: true, header: [] }).reason, 'data_line_too_long')
    sess.mail('FROM:<shop@a.test>')
    sess.rcpt('TO:<nocom@b.test>')
    assert.equal(sess.message({ size: 10, header: ['AMTP-MPC: com/optin\n'] }).reason, 'mpc_denied')
    sess.mail('FROM:<alice@a.test>')
    sess.rcpt('TO:<bob@b.test>')
    assert.equal(sess.message({ size: 10, header: [] }).reason, 'mpc_missing')
    sess.mail('FROM:<alice@a.test> MPC=per/individual')
    sess.rcpt('TO:<bob@b.test>')
    sess.message({ size: 10, header: [] })
    const failed = sess.storeFailed('storage_full', 'disk')
    assert.deepEqual([failed.code, failed.enhanced, failed.reason], [452, '4.3.1', 'storage_full'])
    assert.equal(sess.inTransaction, false)
    assert.throws(() => sess.storeFailed('nonsense'), TypeError)
    assert.throws(() => sess.message({ size: -1, header: [] }), TypeError)
    assert.throws(() => sess.message({ size: 1, header: 'x' }), TypeError)
    const overflow = sess.refusal('close', 'input_overflow', 'pending=9', false)
    assert.deepEqual([overflow.code, overflow.countsAsError], [421, false])
    assert.match(overflow.log, /^event=close session=S1 peer=127\.0\.0\.5 result=fail reason=input_overflow detail="pending=9"/)
})

test('close frees the session at disconnect; a certificate check still running ends without effect', async (t) => {
    const { site: s, pki: p } = site(t)
    const sess = session(s)
    const pending = sess.tls(p.chain('private.chain.pem'), 'TLSv1.3', 'x')
    sess.close()
    assert.deepEqual(await pending, { reason: 'none', log: '' })
    assert.equal(sess.authenticated, false)
    assert.throws(() => sess.ehlo('host1.customers.isp.test'), /session is closed/)
    assert.throws(() => sess.tls([], 'TLSv1.3', 'x'), /session is closed/)
    sess.close()
})

test('bounceMessage: the core report, sent with the MPC the core gives a bounce', (t) => {
    const { site: s } = site(t)
    const b = s.bounceMessage('ID1', 'alice@a.test', [{ recipient: 'bob@b.test', reply: '451 4.3.0 disk' }],
        ['Subject: hi\r\n\r\nbody\r\n'])
    assert.equal(b.mpc, 'net/autoresponse')
    assert.match(b.message, /Final-Recipient: rfc822; bob@b\.test/)
    assert.throws(() => s.bounceMessage('ID1', 'alice@a.test', 'x', []), TypeError)
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

test('settleDelivery: nothing durable is refused, nothing acknowledged that is not durable', () => {
    const ok = { recipient: 'a@b.test', status: 'delivered' }
    const temp = { recipient: 'c@b.test', status: 'temporary', reply: '451 4.3.0 x' }
    assert.deepEqual(amtp.settleDelivery([ok], false), { reply: 'none', carry: false, detail: '' })
    assert.equal(amtp.settleDelivery([temp], false).reply, 'storage_temporary')
    assert.equal(amtp.settleDelivery([ok, temp], false).carry, true)
    assert.throws(() => amtp.settleDelivery([1], false), TypeError)
})
