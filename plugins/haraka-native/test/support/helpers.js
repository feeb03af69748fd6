'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const crypto = require('node:crypto')
const { execFileSync } = require('node:child_process')

const repo = path.resolve(__dirname, '..', '..', '..', '..')

function tempDir(t) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amtp-node-'))
    if (t) t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
    return dir
}

// The project's test PKI (made once by tests/support/make-test-pki.sh with openssl).
function pki() {
    const dir = process.env.AMTP_TEST_PKI || path.join(os.tmpdir(), `amtp-node-pki-${process.getuid()}`)
    execFileSync(path.join(repo, 'tests', 'support', 'make-test-pki.sh'), [dir], { stdio: 'ignore' })
    return {
        dir,
        file: (name) => path.join(dir, name),
        text: (name) => fs.readFileSync(path.join(dir, name), 'utf8').trim(),
        // A PEM chain file as DER buffers, leaf first.
        chain: (name) =>
            fs
                .readFileSync(path.join(dir, name), 'utf8')
                .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)
                .map((pem) => new crypto.X509Certificate(pem).raw),
    }
}

function writeConfig(dir, text, name = 'site.ini') {
    const file = path.join(dir, name)
    fs.writeFileSync(file, text)
    return file
}

module.exports = { repo, tempDir, pki, writeConfig }
