'use strict'
// Where the addon takes the AMTP core from, for binding.gyp:
//   node install/amtp-flags.js mode|include_dirs|cflags|libs
// Two sources:
//   tree        the repository's CMake build: headers in <repo>/core/include, the shared
//               libamtp in $AMTP_BUILD_DIR/lib (default <repo>/build), found at run time
//               through an rpath;
//   pkg-config  the installed library (Debian's libamtp-dev and libamtp0):
//               pkg-config --cflags --libs amtp.
// The default is tree when the package sits in the repository (../../core/include/amtp
// beside it), pkg-config otherwise (the packed tarball installed anywhere). AMTP_LINK
// (or npm's --amtp-link, npm_config_amtp_link) chooses: tree or pkg-config.
// gyp treats any output on stderr as a failure, so this prints nothing there unless it
// fails.
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const here = path.resolve(__dirname, '..')
const repo = path.resolve(here, '..', '..')

function mode() {
    const chosen = process.env.AMTP_LINK || process.env.npm_config_amtp_link
    if (chosen) {
        if (chosen !== 'tree' && chosen !== 'pkg-config') {
            throw new Error(`AMTP_LINK=${chosen}: expected "tree" or "pkg-config"`)
        }
        return chosen
    }
    return fs.existsSync(path.join(repo, 'core', 'include', 'amtp', 'site.hpp')) ? 'tree' : 'pkg-config'
}

function pkgConfig(...args) {
    try {
        return execFileSync('pkg-config', [...args, 'amtp'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
    } catch (err) {
        const why = err.code === 'ENOENT'
            ? 'the pkg-config command is missing (apt-get install pkgconf)'
            : 'pkg-config finds no "amtp": install the AMTP library\'s development package, libamtp-dev ' +
              '(apt-get install libamtp-dev; it brings libamtp0), or set PKG_CONFIG_PATH to the folder of amtp.pc'
        throw new Error(`haraka-plugin-amtp: ${why}`)
    }
}

function split(text) {
    return text.split(/\s+/).filter(Boolean)
}

function treeBuild() {
    return path.resolve(process.env.AMTP_BUILD_DIR || path.join(repo, 'build'))
}

function answer(what) {
    const m = mode()
    if (what === 'mode') return [m]
    if (m === 'tree') {
        const lib = path.join(treeBuild(), 'lib')
        if (what === 'include_dirs') return [path.join(repo, 'core', 'include')]
        if (what === 'cflags') return []
        if (what === 'libs') {
            if (!fs.existsSync(path.join(lib, 'libamtp.so'))) {
                throw new Error(`haraka-plugin-amtp: ${lib}/libamtp.so is missing: build the core first ` +
                    `(cmake --build ${treeBuild()} --target amtp_core), or set AMTP_LINK=pkg-config to use the installed libamtp`)
            }
            return [`-L${lib}`, '-lamtp', `-Wl,-rpath,${lib}`, '-lssl', '-lcrypto']
        }
    } else {
        if (what === 'include_dirs') return split(pkgConfig('--cflags-only-I')).map((f) => f.replace(/^-I/, ''))
        if (what === 'cflags') return split(pkgConfig('--cflags-only-other'))
        if (what === 'libs') return split(pkgConfig('--libs'))
    }
    throw new Error(`usage: amtp-flags.js mode|include_dirs|cflags|libs (got "${what}")`)
}

if (require.main === module) {
    try {
        process.stdout.write(`${answer(process.argv[2]).join(' ')}\n`)
    } catch (err) {
        process.stderr.write(`${err.message}\n`)
        process.exit(1)
    }
}

module.exports = { mode, answer }
