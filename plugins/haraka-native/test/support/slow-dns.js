'use strict'
// A DNS server that answers every query with NXDOMAIN after a delay, in its own process
// so that its timers cannot be confused with the event loop under test.
//   node slow-dns.js DELAY_MS   (prints the UDP port on stdout)
const dgram = require('node:dgram')
const delay = Number(process.argv[2] || 1000)
const sock = dgram.createSocket('udp4')
sock.on('message', (msg, rinfo) => {
    if (msg.length < 12) return
    let end = 12
    while (end < msg.length && msg[end] !== 0) end += msg[end] + 1
    end += 5 // the root label, QTYPE, QCLASS
    const reply = Buffer.from(msg.subarray(0, Math.min(end, msg.length)))
    reply[2] = 0x80 | (msg[2] & 0x01) // QR, RD copied
    reply[3] = 0x80 | 3 // RA, NXDOMAIN
    reply.writeUInt16BE(1, 4)
    reply.writeUInt32BE(0, 6)
    reply.writeUInt16BE(0, 10)
    setTimeout(() => sock.send(reply, rinfo.port, rinfo.address), delay)
})
sock.bind(0, '127.0.0.1', () => console.log(sock.address().port))
