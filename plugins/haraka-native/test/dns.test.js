'use strict'
// DNS runs on Node's own loop (uv_poll on libunbound's descriptor): no lookup may hold
// the event loop, however slow the server.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { once } = require('node:events')
const amtp = require('../lib/native')
const { tempDir, writeConfig } = require('./support/helpers')

const DELAY_MS = 300

async function slowDns(t, delay) {
    const child = spawn(process.execPath, [path.join(__dirname, 'support', 'slow-dns.js'), String(delay)], {
        stdio: ['ignore', 'pipe', 'inherit'],
    })
    t.after(() => child.kill())
    const [line] = await once(child.stdout, 'data')
    return Number(String(line).trim())
}

function dnsSite(t, resolver, timeout = '5s') {
    const dir = tempDir(t)
    return new amtp.Site(writeConfig(dir, `hostname = mx.b.test
[dns]
resolver = ${resolver}
timeout = ${timeout}
nodefault-zone = 127.in-addr.arpa.
`))
}

test('the event loop stays responsive while 50 lookups wait for a slow DNS server', async (t) => {
    const port = await slowDns(t, DELAY_MS)
    const site = dnsSite(t, `127.0.0.1@${port}`)
    // Timer latency: a 10 ms interval must keep firing on time during the lookups (one
    // lookup blocking the loop would delay it by the whole 300 ms).
    let worst = 0
    let last = performance.now()
    const timer = setInterval(() => {
        const now = performance.now()
        worst = Math.max(worst, now - last - 10)
        last = now
    }, 10)
    const started = performance.now()
    const lookups = []
    for (let i = 1; i <= 50; i++) lookups.push(site.lookupClientNames(`127.0.1.${i}`))
    assert.ok(site.pendingLookups() > 0)
    const results = await Promise.all(lookups)
    const elapsed = performance.now() - started
    clearInterval(timer)
    for (const r of results) {
        assert.equal(r.status, 'negative', JSON.stringify(r))
    }
    // All 50 waited at the same time (not one after another, nor 4 at a time).
    assert.ok(elapsed >= DELAY_MS * 0.9, `answers came too early (${elapsed} ms)`)
    // One at a time would take 15 s, four at a time (a thread pool) 3.75 s.
    assert.ok(elapsed < 2500, `lookups were serialised (${elapsed} ms)`)
    assert.ok(worst < 200, `a timer was late by ${worst.toFixed(1)} ms`)
    assert.equal(site.pendingLookups(), 0)
})

test('a resolver that never answers gives a temporary result, never a permanent one', async (t) => {
    const site = dnsSite(t, '127.0.0.1@9', '1s') // discard port: nothing answers
    const started = performance.now()
    const r = await site.lookupClientNames('127.0.0.2')
    assert.equal(r.status, 'temporary')
    assert.ok(performance.now() - started < 4000)
})

test('lookupClientNames refuses what is not an IP address', (t) => {
    const site = dnsSite(t, '127.0.0.1@9', '1s')
    assert.throws(() => site.lookupClientNames('mx.a.test'), TypeError)
    assert.throws(() => site.lookupClientNames(), TypeError)
})
