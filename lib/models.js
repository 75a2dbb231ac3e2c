'use strict'
// Models on demand: the catalogue (catalogue.js), the default folder, and
// downloads that are verified (SHA-1 or SHA-256 before the file appears),
// resumable (a .part file and HTTP Range), cancellable (AbortSignal), safe
// with several processes at once (a lock file), and proxy-aware (http-get.js).
const { createHash } = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { MODEL_NAMES, catalogueEntry } = require('./catalogue')
const { get } = require('./http-get')

/** Network failures in a row that a download resumes after, within one call. */
const ATTEMPTS = 4
/** How often a download waiting for another process's lock looks again. */
const LOCK_POLL_MS = 200

function codedError(code, message, cause) {
  const err = new Error(message, cause ? { cause } : undefined)
  err.code = code
  return err
}

const invalid = (option, reason) => codedError('ERR_INVALID_OPTIONS', `invalid option \`${option}\`: ${reason}`)

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

/** Every catalogue model, with its path in `dir` and whether it is there. */
function listModels({ dir = defaultModelDir() } = {}) {
  return MODEL_NAMES.map((name) => {
    const entry = catalogueEntry(name)
    const file = path.join(dir, entry.file)
    return { ...entry, path: file, downloaded: fs.existsSync(file) }
  })
}

/** The command that downloads a catalogue model, for messages. */
const downloadCommand = (name) => `npx persistent-whisper models download ${name}`

/** { url, file, algorithm, digest, size?, name? } from a catalogue name or a spec. */
function resolveSpec(nameOrSpec) {
  if (typeof nameOrSpec === 'string') {
    const entry = catalogueEntry(nameOrSpec)
    if (!entry) throw invalid('model', `${JSON.stringify(nameOrSpec)} is not in the catalogue (${MODEL_NAMES.join(', ')}); for another model pass { url, sha256 }`)
    return { name: entry.name, url: entry.url, file: entry.file, algorithm: 'sha1', digest: entry.sha1 }
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
  const file = decodeURIComponent(parsed.pathname.split('/').pop() || '')
  if (!file || file === '.' || file === '..' || /[\\/\0]/.test(file)) throw invalid('url', 'must end in a file name')
  return { url: parsed.href, file, algorithm, digest: digest.toLowerCase(), size }
}

function aborted(what) {
  return codedError('ERR_ABORTED', `the download of ${what} was aborted by its AbortSignal; what arrived is kept and the next download resumes from there`)
}

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true })
  })

/** True when process `pid` runs on this machine. */
function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

/**
 * Holds `lockFile` (created exclusively, holding this process's pid) until
 * release() is called. Waits while another live holder has it; takes over a
 * lock whose holder died.
 */
async function lock(lockFile, signal, what) {
  for (;;) {
    try {
      const fd = fs.openSync(lockFile, 'wx')
      fs.writeSync(fd, `${process.pid}\n`)
      fs.closeSync(fd)
      return () => fs.rmSync(lockFile, { force: true })
    } catch (err) {
      if (err.code !== 'EEXIST') throw codedError('ERR_DOWNLOAD_FAILED', `cannot create ${lockFile}: ${err.message}. Check that the folder is writable`, err)
    }
    const holder = Number.parseInt(fs.readFileSync(lockFile, { encoding: 'utf8', flag: 'a+' }), 10)
    if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
      fs.rmSync(lockFile, { force: true })
      continue
    }
    try {
      await sleep(LOCK_POLL_MS, signal)
    } catch {
      throw aborted(what)
    }
  }
}

/**
 * The checksum of `file`. Read back once the download is whole, so that
 * what is verified is what is on disk, however many attempts it took.
 */
async function checksum(algorithm, file) {
  const hash = createHash(algorithm)
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk)
  return hash.digest('hex')
}

/**
 * One attempt: continues `part` from its length with a Range request (or
 * starts it over when the server sends the whole file). Resolves when the
 * body has arrived whole; rejects with a retryable Error otherwise.
 */
async function fetchInto(spec, part, signal, report) {
  let have = fs.existsSync(part) ? fs.statSync(part).size : 0
  const headers = have > 0 ? { Range: `bytes=${have}-` } : {}
  const { response } = await get(spec.url, { headers, signal })
  const status = response.statusCode
  if (status === 416 && have > 0) {
    // Nothing left to send: the .part is whole (or wrong, which the checksum says).
    response.resume()
    return { whole: true, total: have }
  }
  if (status !== 200 && status !== 206) {
    response.resume()
    const err = codedError('ERR_DOWNLOAD_FAILED', `downloading ${spec.url} failed: HTTP ${status}${status === 404 ? ' (no such file: check the URL or the model name)' : ''}`)
    err.final = status >= 400 && status < 500
    throw err
  }
  if (status === 200 && have > 0) {
    // The server ignored the Range: start over.
    have = 0
    fs.truncateSync(part, 0)
  }
  const length = Number(response.headers['content-length'])
  const total = Number.isFinite(length) ? have + length : spec.size
  const out = fs.createWriteStream(part, { flags: have > 0 ? 'a' : 'w' })
  let received = have
  report(received, total)
  try {
    for await (const chunk of response) {
      if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve))
      received += chunk.length
      report(received, total)
    }
  } finally {
    await new Promise((resolve) => out.end(resolve))
  }
  if (Number.isFinite(length) && received - have < length) {
    throw new Error(`the connection closed after ${received} of ${total} bytes`)
  }
  return { whole: true, total: received }
}

/**
 * Downloads a catalogue model by name, or any model given as
 * `{ url, sha256 | sha1, size? }`, into `dir` (default: defaultModelDir()),
 * and resolves with the file's path. A file already there is used as it is.
 */
async function downloadModel(nameOrSpec, options = {}) {
  const spec = resolveSpec(nameOrSpec)
  const { dir = defaultModelDir(), onProgress, signal } = options ?? {}
  if (typeof dir !== 'string' || !dir) throw invalid('dir', 'must be a folder path')
  if (onProgress !== undefined && typeof onProgress !== 'function') throw invalid('onProgress', 'must be a function')
  if (signal != null && (typeof signal !== 'object' || typeof signal.addEventListener !== 'function')) throw invalid('signal', 'must be an AbortSignal')
  const what = spec.name ?? spec.file
  if (signal?.aborted) throw aborted(what)
  const final = path.join(path.resolve(dir), spec.file)
  if (fs.existsSync(final)) return final
  try {
    fs.mkdirSync(path.dirname(final), { recursive: true })
  } catch (err) {
    throw codedError('ERR_DOWNLOAD_FAILED', `cannot create the folder ${path.dirname(final)}: ${err.message}`, err)
  }
  const release = await lock(`${final}.lock`, signal, what)
  try {
    // Another process may have finished it while this one waited.
    if (fs.existsSync(final)) return final
    const part = `${final}.part`
    let lastPercent = -1
    const report = (bytes, total) => {
      if (!onProgress) return
      const percent = total ? Math.floor((bytes / total) * 100) : undefined
      if (percent !== undefined && percent === lastPercent && bytes !== total) return
      lastPercent = percent
      try {
        onProgress({ bytes, total, percent })
      } catch {
        // A throwing progress callback does not stop the download.
      }
    }
    for (let attempt = 1; ; attempt++) {
      try {
        await fetchInto(spec, part, signal, report)
        break
      } catch (err) {
        if (signal?.aborted) throw aborted(what)
        if (err.code === 'ERR_DOWNLOAD_FAILED' && err.final) throw err
        if (attempt === ATTEMPTS) {
          throw codedError('ERR_DOWNLOAD_FAILED', `downloading ${spec.url} failed: ${err.message}. What arrived is kept in ${part}; run the download again to resume`, err)
        }
      }
    }
    const got = await checksum(spec.algorithm, part)
    const size = fs.statSync(part).size
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
    if (err.code && err.message) throw err
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
  if (typeof modelPath !== 'string' || !catalogueEntry(modelPath) || fs.existsSync(modelPath)) return undefined
  return { name: modelPath, path: path.join(path.resolve(dir), catalogueEntry(modelPath).file) }
}

module.exports = { defaultModelDir, downloadCommand, downloadModel, listModels, resolveModelPath }
