'use strict'
// Loads the compiled addon: $AMTP_ADDON, else the CMake build in $AMTP_BUILD_DIR/lib, else
// node-gyp's (build/Release, or build/Debug).
const path = require('node:path')

const candidates = [
    process.env.AMTP_ADDON,
    // The CMake build of the addon, beside the core it was linked with.
    process.env.AMTP_BUILD_DIR && path.join(path.resolve(process.env.AMTP_BUILD_DIR), 'lib', 'amtp.node'),
    path.join(__dirname, '..', 'build', 'Release', 'amtp.node'),
    path.join(__dirname, '..', 'build', 'Debug', 'amtp.node'),
].filter(Boolean)

let loaded = null
const failures = []
for (const file of candidates) {
    try {
        loaded = require(file)
        break
    } catch (err) {
        failures.push(`${file}: ${err.message}`)
    }
}
if (!loaded) {
    throw new Error(
        `the AMTP addon is not built (run "npm run build" in ${path.join(__dirname, '..')}):\n  ${failures.join('\n  ')}`,
    )
}
module.exports = loaded
