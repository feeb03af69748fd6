'use strict'
// Hands one message on, without a queue of its own (the caller acknowledges its client
// only after the next hop's 2xx):
//   deliver()  to a local delivery agent by LMTP (RFC 2033), for delivery.lmtp:
//              "unix:/path/to/socket" or "address:port" (core refuses names); one reply per recipient.
//   handoff()  to amtpd's private listener over implicit TLS with MPC= on MAIL, whose
//              durable queue then sends it on by AMTP (docs/haraka.md, outgoing mail);
//              all or nothing: when a recipient is refused the data is not sent, so
//              that a failed hand-off leaves nothing queued.
// Both resolve with one reply per recipient, in order (null: the data was not sent for
// it), and reject when the next hop cannot be reached or breaks the dialogue.
const net = require('node:net')
const tls = require('node:tls')

function endpoint(target) {
    if (target.startsWith('unix:')) return { path: target.slice(5) }
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(target)
    if (!m) throw new Error(`bad LMTP target: ${target}`)
    return { host: m[1], port: Number(m[2]) }
}

// Reads complete (possibly multi-line) replies from a socket, one at a time.
class ReplyReader {
    constructor(socket) {
        this.buffer = ''
        this.lines = []
        this.waiting = []
        this.error = null
        socket.setEncoding('latin1')
        socket.on('data', (chunk) => {
            this.buffer += chunk
            let i
            while ((i = this.buffer.indexOf('\n')) >= 0) {
                const line = this.buffer.slice(0, i).replace(/\r$/, '')
                this.buffer = this.buffer.slice(i + 1)
                this.lines.push(line)
                if (line.length < 4 || line[3] !== '-') this.#deliver()
            }
        })
        const fail = (err) => {
            this.error = err || new Error('LMTP connection closed')
            for (const w of this.waiting.splice(0)) w.reject(this.error)
        }
        socket.on('error', fail)
        socket.on('close', () => fail(this.error))
        this.replies = []
    }
    #deliver() {
        const lines = this.lines.splice(0)
        const reply = { code: parseInt(lines[0].slice(0, 3), 10), text: lines.map((l) => l.slice(4)).join('\n') }
        const w = this.waiting.shift()
        if (w) w.resolve(reply)
        else this.replies.push(reply)
    }
    next() {
        if (this.replies.length) return Promise.resolve(this.replies.shift())
        if (this.error) return Promise.reject(this.error)
        return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }))
    }
}

function deliver(target, { lhlo, sender, recipients, data, timeoutMs = 120000 }) {
    const socket = net.createConnection(endpoint(target))
    return transfer(socket, { lmtp: true, hello: `LHLO ${lhlo}`, mail: `MAIL FROM:<${sender}>`, recipients, data, timeoutMs,
        atomic: false })
}

// options: host, port, cert, key (PEM), ca (PEM list), servername; message as deliver().
function handoff(options, { ehlo, sender, mpc, recipients, data, timeoutMs = 120000 }) {
    const socket = tls.connect({
        host: options.host,
        port: options.port,
        cert: options.cert,
        key: options.key,
        ca: options.ca,
        servername: options.servername,
        minVersion: 'TLSv1.2',
    })
    return transfer(socket, { lmtp: false, hello: `EHLO ${ehlo}`, mail: `MAIL FROM:<${sender}> MPC=${mpc}`, recipients, data,
        timeoutMs, atomic: true })
}

async function transfer(socket, { lmtp, hello, mail, recipients, data, timeoutMs, atomic }) {
    const what = lmtp ? 'LMTP' : 'hand-off'
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`${what}: next hop timed out`)))
    const reader = new ReplyReader(socket)
    const send = (line) => socket.write(`${line}\r\n`, 'latin1')
    const expect = async (step, ok) => {
        const r = await reader.next()
        if (!ok(r.code)) throw new Error(`${what} ${step}: ${r.code} ${r.text}`)
        return r
    }
    try {
        await expect('greeting', (c) => c === 220)
        send(hello)
        await expect('hello', (c) => c === 250)
        send(mail)
        await expect('MAIL', (c) => c === 250)
        const accepted = []
        const results = recipients.map(() => null)
        for (let i = 0; i < recipients.length; i++) {
            send(`RCPT TO:<${recipients[i]}>`)
            const r = await reader.next()
            if (r.code >= 200 && r.code < 300) accepted.push(i)
            else results[i] = r
        }
        if (accepted.length && (!atomic || accepted.length === recipients.length)) {
            send('DATA')
            await expect('DATA', (c) => c === 354)
            let text = Buffer.isBuffer(data) ? data.toString('latin1') : String(data)
            if (!text.endsWith('\r\n')) text += '\r\n'
            socket.write(text.replace(/(^|\r\n)\./g, '$1..'), 'latin1')
            socket.write('.\r\n')
            if (lmtp) {
                // LMTP: one reply per accepted recipient, in RCPT order.
                for (const i of accepted) results[i] = await reader.next()
            } else {
                const r = await reader.next()
                for (const i of accepted) results[i] = r
            }
        }
        send('QUIT')
        return results
    } finally {
        socket.end()
    }
}

module.exports = { deliver, handoff }
