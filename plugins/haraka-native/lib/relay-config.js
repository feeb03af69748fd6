'use strict'
// The configuration of amtpd as Haraka's relay sidecar (docs/haraka.md, outgoing mail),
// derived from the site's own INI: written by serve at start and again by the plugin on
// SIGHUP, so that both programs always read the same settings.
const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')

function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer()
        srv.on('error', reject)
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address()
            srv.close(() => resolve(port))
        })
    })
}

// The INI for amtpd as the relay sidecar: the site's own file with the listeners
// replaced by one loopback hand-off listener and the policy extended by a pin of the
// site's certificate from 127.0.0.1 (only Haraka presents it there). Written beside the
// site's file so that relative paths mean the same.
function relayIni(iniFile, port, policyFile) {
    const out = []
    let section = ''
    let sawPolicy = false
    for (const line of fs.readFileSync(iniFile, 'utf8').split(/\r?\n/)) {
        const header = /^\s*\[([^\]]+)\]\s*$/.exec(line)
        if (header) {
            section = header[1].trim().toLowerCase()
            if (section === 'listen') continue
            out.push(line)
            if (section === 'policy') {
                sawPolicy = true
                out.push(`file = ${policyFile}`)
            }
            continue
        }
        if (section === 'listen') continue
        if (section === 'policy' && /^\s*file\s*=/.test(line)) continue
        out.push(line)
    }
    if (!sawPolicy) out.push('[policy]', `file = ${policyFile}`)
    out.push('[listen]', `private = 127.0.0.1:${port}`, '')
    return out.join('\n')
}

function relayPolicy(policyFile, certFile) {
    const leaf = fs.readFileSync(certFile, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)
    const sha256 = new crypto.X509Certificate(leaf[0]).fingerprint256.replace(/:/g, '').toLowerCase()
    const pin = `  <private-network name="haraka-handoff"><pin sha256="${sha256}" from="127.0.0.1/32"/></private-network>\n`
    const xml = policyFile ? fs.readFileSync(policyFile, 'utf8') : '<?xml version="1.0"?>\n<amtp-policy>\n</amtp-policy>\n'
    const at = xml.lastIndexOf('</amtp-policy>')
    if (at < 0) throw new Error(`${policyFile}: no </amtp-policy>`)
    return xml.slice(0, at) + pin + xml.slice(at)
}

function base(iniFile) {
    return path.join(path.dirname(iniFile), `.${path.basename(iniFile, '.ini')}.haraka-relay`)
}

function remove(iniFile) {
    for (const f of [`${base(iniFile)}.ini`, `${base(iniFile)}.xml`]) fs.rmSync(f, { force: true })
}

// settings: Site.settings of iniFile. Returns the sidecar's INI file name.
function write(iniFile, settings, port) {
    const policyFile = `${base(iniFile)}.xml`
    fs.writeFileSync(policyFile, relayPolicy(settings.policyFile, settings.tls.certificate))
    fs.writeFileSync(`${base(iniFile)}.ini`, relayIni(iniFile, port, policyFile))
    return `${base(iniFile)}.ini`
}

module.exports = { freePort, remove, write }
