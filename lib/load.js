'use strict'
// Loads the native addon built for this platform. Where there is none, the
// Error says which platform this is and which ones persistent-whisper
// supports, instead of napi-rs's generic "Cannot find native binding".

/** The platforms with a persistent-whisper-<platform> package. */
const SUPPORTED_PLATFORMS = Object.freeze(['linux-x64-gnu', 'linux-arm64-gnu', 'darwin-x64', 'darwin-arm64', 'win32-x64-msvc'])

function isMusl() {
  if (process.platform !== 'linux') return false
  const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null
  return !report?.header?.glibcVersionRuntime
}

/** This machine's platform in napi's naming: linux-x64-gnu, darwin-arm64, win32-x64-msvc ... */
function platformName() {
  const abi = process.platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : process.platform === 'win32' ? '-msvc' : ''
  return `${process.platform}-${process.arch}${abi}`
}

function coded(code, message, cause) {
  const err = new Error(message, cause ? { cause } : undefined)
  err.code = code
  return err
}

function loadAddon() {
  const platform = platformName()
  if (!SUPPORTED_PLATFORMS.includes(platform)) {
    throw coded(
      'ERR_UNSUPPORTED_PLATFORM',
      `persistent-whisper does not support this platform (${platform}). Supported: ${SUPPORTED_PLATFORMS.join(', ')}.`,
    )
  }
  try {
    return require('../index.js')
  } catch (err) {
    throw coded(
      'ERR_ADDON_LOAD',
      `persistent-whisper could not load its native addon for ${platform}: the package persistent-whisper-${platform} ` +
        'is missing or broken. Reinstall persistent-whisper with its optional dependencies (do not pass --omit=optional ' +
        `or --no-optional); in Electron, unpack it from the asar archive. Cause: ${err.message}`,
      err,
    )
  }
}

module.exports = { SUPPORTED_PLATFORMS, loadAddon, platformName }
