'use strict'
// Models on demand: the catalogue (catalogue.js), the default folder, and
// downloads that are verified (SHA-1 or SHA-256 before the file appears),
// resumable (a .part file and HTTP Range), cancellable (AbortSignal), bounded
// in time (idleTimeout) and size, safe with several processes at once and in
// a folder others can write (model-lock.js, download-attempt.js), and
// proxy-aware (http-get.js).
const { createHash } = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { MODEL_NAMES, VAD_MODEL_NAMES, catalogueEntry } = require('./catalogue')
const { acquireLock } = require('./model-lock')
const { attempt, digestOf } = require('./download-attempt')
const { aborted, codedError, invalid } = require('./download-errors')

/** Network failures in a row that a download resumes after, within one call. */
const ATTEMPTS = 4
/** The codes a download rejects with; anything else (a disk error, say) becomes ERR_DOWNLOAD_FAILED. */
const OWN_CODES = ['ERR_ABORTED', 'ERR_CHECKSUM_MISMATCH', 'ERR_DOWNLOAD_FAILED', 'ERR_INVALID_OPTIONS']
/** No byte for this long (ms) ends an attempt; the next one resumes with a Range request. */
const IDLE_TIMEOUT_MS = 30_000

/**
 * Where models go unless you say otherwise: the platform's cache folder,
 * under persistent-whisper/models.
 */
function defaultModelDir() {
  const home = os.homedir()
  let base
  if (process.platform === 'win32') base = process.env.LOCALAPPDATA || path.join(home, 'AppData', 'Local')
  else if (process.platform === 'darwin') base = path.join(home, 'Library', 'Caches')
  else base = process.env.XDG_CACHE_HOME && path.isAbsolute(process.env.XDG_CACHE_HOME) ? process.env.XDG_CACHE_HOME : path.join(home, '.cache')
  return path.join(base, 'persistent-whisper', 'models')
}

/** Every catalogue model (whisper's, then VAD's), with its path in `dir` and whether it is there. */
function listModels({ dir = defaultModelDir() } = {}) {
  return [...MODEL_NAMES, ...VAD_MODEL_NAMES].map((name) => {
    const entry = catalogueEntry(name)
    const file = path.join(dir, entry.file)
    return { ...entry, path: file, downloaded: fs.existsSync(file) }
  })
}

/** The command that downloads a catalogue model, for messages. */
const downloadCommand = (name) => `npx persistent-whisper models download ${name}`

/** { url, file, algorithm, digest, size?, name?, maxBytes? } from a catalogue name or a spec. */
function resolveSpec(nameOrSpec) {
  if (typeof nameOrSpec === 'string') {
    const entry = catalogueEntry(nameOrSpec)
    if (!entry) throw invalid('model', `${JSON.stringify(nameOrSpec)} is not in the catalogue (${[...MODEL_NAMES, ...VAD_MODEL_NAMES].join(', ')}); for another model pass { url, sha256 }`)
    const [algorithm, digest] = entry.sha256 ? ['sha256', entry.sha256] : ['sha1', entry.sha1]
    return { name: entry.name, url: entry.url, file: entry.file, algorithm, digest, maxBytes: entry.maxBytes }
  }
  if (!nameOrSpec || typeof nameOrSpec !== 'object') throw invalid('model', 'must be a catalogue name such as "base.en", or { url, sha256 | sha1, size? }')
  const { url, sha256, sha1, size } = nameOrSpec
  let parsed
  try {
    parsed = new URL(url)
  } catch {
    throw invalid('url', `must be an http or https URL (got ${JSON.stringify(url)})`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw invalid('url', `must be an http or https URL (got ${parsed.protocol})`)
  const [algorithm, digest, length] = sha256 !== undefined ? ['sha256', sha256, 64] : ['sha1', sha1, 40]
  if (typeof digest !== 'string' || !new RegExp(`^[0-9a-fA-F]{${length}}$`).test(digest)) {
    throw invalid(sha256 !== undefined ? 'sha256' : 'sha1', `a checksum is required: sha256 (64 hex digits) or sha1 (40), so that a damaged or wrong file is never used`)
  }
  if (size !== undefined && !(Number.isSafeInteger(size) && size > 0)) throw invalid('size', 'must be a whole number of bytes')
  const raw = parsed.pathname.split('/').pop() || ''
  let file
  try {
    file = decodeURIComponent(raw)
  } catch {
    throw invalid('url', `its file name ${JSON.stringify(raw)} has a malformed % escape; give the URL as the server names the file`)
  }
  if (!file || file === '.' || file === '..' || /[\\/\x00-\x1f\x7f]/.test(file)) throw invalid('url', 'must end in a file name (without slashes or control characters)')
  return { url: parsed.href, file, algorithm, digest: digest.toLowerCase(), size }
}

/**
 * Downloads a catalogue model by name, or any model given as
 * `{ url, sha256 | sha1, size? }`, into `dir` (default: defaultModelDir()),
 * and resolves with the file's path. A file already there is used as it is.
 */
async function downloadModel(nameOrSpec, options = {}) {
  const spec = resolveSpec(nameOrSpec)
  const { dir = defaultModelDir(), onProgress, signal, idleTimeout = IDLE_TIMEOUT_MS } = options ?? {}
  if (typeof dir !== 'string' || !dir) throw invalid('dir', 'must be a folder path')
  if (onProgress !== undefined && typeof onProgress !== 'function') throw invalid('onProgress', 'must be a function')
  if (signal != null && (typeof signal !== 'object' || typeof signal.addEventListener !== 'function')) throw invalid('signal', 'must be an AbortSignal')
  if (!(Number.isSafeInteger(idleTimeout) && idleTimeout > 0)) throw invalid('idleTimeout', `must be a whole number of milliseconds above 0 (default ${IDLE_TIMEOUT_MS})`)
  const what = spec.name ?? spec.file
  if (signal?.aborted) throw aborted(what)
  const final = path.join(path.resolve(dir), spec.file)
  if (fs.existsSync(final)) return final
  try {
    fs.mkdirSync(path.dirname(final), { recursive: true })
  } catch (err) {
    throw codedError('ERR_DOWNLOAD_FAILED', `cannot create the folder ${path.dirname(final)}: ${err.message}`, err)
  }
  const release = await acquireLock(`${final}.lock`, signal, () => aborted(what))
  const part = `${final}.part`
  try {
    // Another process may have finished it while this one waited.
    if (fs.existsSync(final)) return final
    let lastPercent = -1
    const report = (bytes, total) => {
      if (!onProgress) return
      const percent = total ? Math.min(100, Math.floor((bytes / total) * 100)) : undefined
      if (percent !== undefined && percent === lastPercent && bytes !== total) return
      lastPercent = percent
      try {
        onProgress({ bytes, total, percent })
      } catch {
        // A throwing progress callback does not stop the download.
      }
    }
    for (let n = 1; ; n++) {
      try {
        await attempt({ ...spec, what }, part, { signal, idleTimeout, report })
        break
      } catch (err) {
        if (signal?.aborted) throw aborted(what)
        if (err.final) {
          if (err.discard) fs.rmSync(part, { force: true })
          throw err
        }
        if (n === ATTEMPTS) {
          throw codedError('ERR_DOWNLOAD_FAILED', `downloading ${spec.url} failed: ${err.message}. What arrived is kept in ${part}; run the download again to resume`, err)
        }
      }
    }
    const { digest: got, size } = await digestOf(part, createHash(spec.algorithm))
    if (got !== spec.digest || (spec.size !== undefined && size !== spec.size)) {
      fs.rmSync(part, { force: true })
      const sizeNote = spec.size !== undefined && size !== spec.size ? ` and ${size} bytes instead of ${spec.size}` : ''
      throw codedError(
        'ERR_CHECKSUM_MISMATCH',
        `${spec.url} has ${spec.algorithm} ${got}${sizeNote}, not the expected ${spec.digest}; the file was deleted. ` +
          'A mirror (PERSISTENT_WHISPER_MODEL_BASE_URL) or proxy may serve another file; check the source and the checksum, then download again',
      )
    }
    fs.renameSync(part, final)
    return final
  } catch (err) {
    if (OWN_CODES.includes(err.code)) throw err
    throw codedError('ERR_DOWNLOAD_FAILED', `downloading ${spec.url} failed: ${err.message}`, err)
  } finally {
    release()
  }
}

/**
 * The file a `modelPath` names: a path as it is, or a catalogue name (such as
 * 'base.en') that is not a file here, as its file in `dir`.
 */
function resolveModelPath(modelPath, dir = defaultModelDir()) {
  if (typeof modelPath !== 'string' || !MODEL_NAMES.includes(modelPath) || fs.existsSync(modelPath)) return undefined
  return { name: modelPath, path: path.join(path.resolve(dir), catalogueEntry(modelPath).file) }
}

module.exports = { IDLE_TIMEOUT_MS, defaultModelDir, downloadCommand, downloadModel, listModels, resolveModelPath }
