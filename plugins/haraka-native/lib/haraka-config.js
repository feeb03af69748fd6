#!/usr/bin/env node
'use strict'
// Writes a Haraka configuration directory from the shared AMTP settings (INI) and policy:
//   node lib/haraka-config.js AMTP_INI OUT_DIR
//   amtp-haraka-config AMTP_INI OUT_DIR        (the same, as the npm package's command)
// The files it writes (config/smtp.ini, me, tls.ini, connection.ini, log.ini, plugins,
// host_list, amtp.ini, the certificate and key copies) replace those of the same name.
// The settings are read by the core (through the addon), so a bad file fails here with
// the same "file:line: key: message" as amtpd's.
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const native = require('./native')
const relay = require('./relay-config')

function write(dir, name, text) {
    fs.writeFileSync(path.join(dir, name), text)
}

function ini(sections) {
    let out = ''
    for (const [section, entries] of Object.entries(sections)) {
        if (section) out += `[${section}]\n`
        for (const [k, v] of Object.entries(entries)) out += `${k}=${v}\n`
        out += '\n'
    }
    return out
}

async function main(argv) {
    if (argv.length !== 2) {
        console.error('usage: amtp-haraka-config AMTP_INI HARAKA_DIR')
        return 64
    }
    const iniFile = path.resolve(argv[0])
    const out = path.resolve(argv[1])
    let s
    try {
        s = new native.Site(iniFile).settings
    } catch (err) {
        console.error(`amtp: ${err.message}`)
        return 78
    }
    const listeners = [...s.listen.public, ...s.listen.private]
    if (!listeners.length) {
        console.error(`amtp: ${iniFile}: listen.public or listen.private is required for Haraka`)
        return 78
    }
    if (!s.tls.certificate || !s.tls.key) {
        console.error(`amtp: ${iniFile}: tls.certificate and tls.key are required`)
        return 78
    }
    const config = path.join(out, 'config')
    fs.mkdirSync(config, { recursive: true })
    fs.mkdirSync(path.join(out, 'plugins'), { recursive: true })

    const listen = listeners.map((e) => (e.address.includes(':') ? `[${e.address}]:${e.port}` : e.text)).join(',')
    write(config, 'smtp.ini', ini({
        '': {
            listen,
            // One port is Haraka's own smtps port; the plugin gives the others implicit TLS too.
            smtps_port: s.listen.starttls ? 0 : listeners[0].port,
            nodes: 0,
            daemonize: false,
            inactivity_timeout: s.limits.commandTimeout,
            graceful_shutdown: true,
        },
    }))
    write(config, 'me', `${s.hostname}\n`)
    write(config, 'plugins', 'tls\namtp\n')
    // Relaying from private listeners: amtpd (AMTP_AMTPD) runs beside Haraka, started by
    // the plugin, and takes the hand-off into its durable queue.
    const amtp = { main: { config: iniFile } }
    relay.remove(iniFile)
    const amtpd = process.env.AMTP_AMTPD
    if (amtpd && fs.existsSync(amtpd) && s.listen.private.length) {
        const port = await relay.freePort()
        amtp.relay = { amtpd, config: relay.write(iniFile, s, port), host: '127.0.0.1', port }
    }
    write(config, 'amtp.ini', ini(amtp))

    // Node must not refuse a certificate itself: the core verifies every chain so that
    // the refusal arrives as AMTP's 504 5.7.1 with its reason, after EHLO.
    for (const [name, file] of [['tls_cert.pem', s.tls.certificate], ['tls_key.pem', s.tls.key]]) {
        fs.copyFileSync(file, path.join(config, name))
    }
    fs.chmodSync(path.join(config, 'tls_key.pem'), 0o600)
    const dh = path.join(config, 'dhparams.pem')
    if (!fs.existsSync(dh)) {
        // RFC 7919's ffdhe2048: instant, where "openssl dhparam 2048" (Haraka's default) takes minutes.
        execFileSync('openssl', ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'group:ffdhe2048', '-out', dh])
    }
    write(config, 'tls.ini', ini({
        main: {
            key: 'tls_key.pem',
            cert: 'tls_cert.pem',
            dhparam: 'dhparams.pem',
            requestCert: true,
            rejectUnauthorized: false,
            minVersion: `TLSv${s.tls.minVersion}`,
        },
    }))
    write(config, 'connection.ini', ini({
        // The trace fields are the core's; Haraka adds none of its own.
        // Haraka reads each section whole: every key it uses is written here.
        main: {},
        haproxy: {},
        headers: { add_received: false, clean_auth_results: false, max_lines: 1000, max_received: 100 },
        // The core answers SIZE= and an oversized message (552 5.3.4) as on every
        // front-end; Haraka's own check answers first, in its words ("550 Message too
        // big!"), so its bound, which caps what it buffers, sits at twice ours.
        max: { bytes: 2 * s.limits.maxMessageSize, mime_parts: 1000, line_length: 1000, data_line_length: 1000 },
        message: { helo: 'AMTP service', close: 'closing connection' },
        uuid: { banner_chars: 0, deny_chars: 0 },
    }))
    write(config, 'log.ini', ini({ main: { level: 'notice', timestamps: true, format: 'default' } }))
    write(config, 'host_list', `${s.delivery.localDomains.join('\n')}\n`)

    // Installed by npm into this instance (node_modules/haraka-plugin-amtp): Haraka finds
    // it there. Otherwise (the repository's folder) a link in <dir>/plugins/amtp/, where
    // Haraka finds local plugins (its package.json names index.js).
    const self = fs.realpathSync(path.resolve(__dirname, '..'))
    const installed = path.join(out, 'node_modules', 'haraka-plugin-amtp')
    if (fs.existsSync(installed) && fs.realpathSync(installed) === self) return 0
    const link = path.join(out, 'plugins', 'amtp')
    try {
        fs.unlinkSync(link)
    } catch {
        // not there yet
    }
    fs.symlinkSync(path.resolve(__dirname, '..'), link)
    return 0
}

main(process.argv.slice(2)).then(
    (code) => {
        process.exitCode = code
    },
    (err) => {
        console.error(`amtp: ${err.message}`)
        process.exitCode = 78
    },
)
