'use strict'
// A fleet job's `audio` ({ path }, { url } or { base64 }) turned into what
// transcribe() takes: a path, or the file's bytes in memory (never written to
// disk). Job data comes from whoever can write to the queue, so every field
// is checked, and what a job can make a host read or fetch is bounded.
const { realpath } = require('node:fs/promises')
const { isAbsolute, relative, resolve, sep } = require('node:path')

const MiB = 1024 * 1024

/** The limits a worker applies unless its options say otherwise. */
const AUDIO_DEFAULTS = Object.freeze({
  pathRoot: null,
  maxBase64Bytes: 10 * MiB,
  maxUrlBytes: 100 * MiB,
  urlTimeout: 60_000,
  allowUrl: null,
})

const MAX_REDIRECTS = 5

function codedError(code, message) {
  const err = new Error(message)
  err.code = code
  return err
}

const invalid = (message) => codedError('ERR_INVALID_OPTIONS', message)

/** A URL as messages show it: no credentials, no query (a signed URL's token stays out of failedReason). */
function shown(url) {
  return `${url.protocol}//${url.host}${url.pathname}`
}

/** The job's audio, as a path or a Buffer for transcribe(). Rejects with a coded Error. */
async function jobAudio(audio, limits, signal) {
  if (audio === null || typeof audio !== 'object' || Array.isArray(audio)) {
    throw invalid('the job\'s data.audio must be an object: { path }, { url } or { base64 }')
  }
  const kinds = ['path', 'url', 'base64'].filter((k) => audio[k] !== undefined)
  if (kinds.length !== 1) {
    throw invalid(`the job's data.audio must name exactly one of path, url or base64 (it names ${kinds.length ? kinds.join(', ') : 'none'})`)
  }
  const [kind] = kinds
  const value = audio[kind]
  if (typeof value !== 'string' || value.length === 0) throw invalid(`the job's data.audio.${kind} must be a non-empty string`)
  if (kind === 'path') return jobPath(value, limits.pathRoot)
  if (kind === 'base64') return jobBase64(value, limits.maxBase64Bytes)
  return fetchAudio(value, limits, signal)
}

/**
 * A path on storage every host sees. Without pathRoot it must be absolute
 * (a relative one would depend on each host's working directory); with it,
 * it resolves inside pathRoot, symbolic links followed, or is refused.
 */
async function jobPath(path, root) {
  if (path.includes('\0')) throw invalid('the job\'s data.audio.path contains a NUL character')
  if (!root) {
    if (!isAbsolute(path)) throw invalid(`the job's data.audio.path must be absolute (got ${JSON.stringify(path)}): hosts differ in their working directory`)
    return path
  }
  const rootReal = await realpath(root)
  let real
  try {
    real = await realpath(resolve(rootReal, path))
  } catch (err) {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') throw codedError('ERR_AUDIO_NOT_FOUND', `the job's audio file does not exist: ${path} (under the worker's pathRoot)`)
    throw codedError('ERR_AUDIO_UNREADABLE', `the job's audio file cannot be read: ${path}: ${err.message}`)
  }
  const inside = relative(rootReal, real)
  if (inside === '' || inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
    throw invalid(`the job's data.audio.path ${JSON.stringify(path)} is outside the worker's pathRoot`)
  }
  // The resolved path, so that a link swapped afterwards cannot lead the engine elsewhere.
  return real
}

/** base64 (or base64url) of an audio file, decoded after checking its alphabet and size. */
function jobBase64(text, max) {
  const body = text.replace(/=+$/, '')
  if (text.length - body.length > 2 || /[^A-Za-z0-9+/_-]/.test(body)) {
    throw invalid('the job\'s data.audio.base64 is not base64: encode the file\'s bytes with Buffer.toString(\'base64\')')
  }
  const bytes = Math.floor((body.length * 3) / 4)
  if (bytes > max) {
    throw invalid(`the job's data.audio.base64 holds ${bytes} bytes, more than this worker's maxBase64Bytes (${max}): send larger files as { path } or { url }`)
  }
  return Buffer.from(body, 'base64')
}

/**
 * GET the URL (http or https only, each redirect checked like the first URL)
 * into memory, at most maxUrlBytes, within urlTimeout, stopped by `signal`.
 * A missing file is ERR_AUDIO_NOT_FOUND; a server or network failure is
 * ERR_DOWNLOAD_FAILED (worth a retry).
 */
async function fetchAudio(text, limits, signal) {
  let url
  try {
    url = new URL(text)
  } catch {
    throw invalid('the job\'s data.audio.url is not a URL')
  }
  const controller = new AbortController()
  const stop = () => controller.abort(signal.reason)
  if (signal?.aborted) stop()
  signal?.addEventListener('abort', stop)
  const timer = setTimeout(() => controller.abort(codedError('ERR_DOWNLOAD_FAILED', `no audio from ${shown(url)} within urlTimeout (${limits.urlTimeout} ms)`)), limits.urlTimeout)
  try {
    for (let hop = 0; ; hop++) {
      checkUrl(url, limits.allowUrl)
      const response = await request(url, controller.signal)
      const location = response.headers.get('location')
      if (response.status >= 300 && response.status < 400 && location) {
        await response.body?.cancel().catch(() => {})
        if (hop === MAX_REDIRECTS) throw codedError('ERR_DOWNLOAD_FAILED', `more than ${MAX_REDIRECTS} redirects from ${shown(url)}`)
        url = new URL(location, url)
        continue
      }
      return await body(response, url, limits.maxUrlBytes, controller)
    }
  } catch (err) {
    // An abort surfaces as the reason it was given: the job's cancellation, or the timeout.
    if (controller.signal.aborted) throw controller.signal.reason instanceof Error ? controller.signal.reason : codedError('ERR_ABORTED', 'the job was cancelled')
    throw err
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', stop)
  }
}

function checkUrl(url, allowUrl) {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalid(`the job's data.audio.url must be http or https (got ${url.protocol})`)
  }
  if (allowUrl && !allowUrl(new URL(url.href))) throw invalid(`the worker's allowUrl refused ${shown(url)}`)
}

async function request(url, signal) {
  try {
    return await fetch(url, { redirect: 'manual', signal, headers: { 'user-agent': 'persistent-whisper' } })
  } catch (err) {
    if (signal.aborted) throw err
    throw codedError('ERR_DOWNLOAD_FAILED', `could not fetch ${shown(url)}: ${err.cause?.message ?? err.message}`)
  }
}

/** The response's bytes, refused as soon as they exceed `max`. */
async function body(response, url, max, controller) {
  if (response.status === 404 || response.status === 410) {
    throw codedError('ERR_AUDIO_NOT_FOUND', `no audio at ${shown(url)} (HTTP ${response.status})`)
  }
  if (response.status !== 200) {
    // 5xx, 408 and 429 may pass; other refusals (401, 403 ...) will not on a retry.
    const passing = response.status >= 500 || response.status === 408 || response.status === 429
    throw codedError(passing ? 'ERR_DOWNLOAD_FAILED' : 'ERR_AUDIO_UNREADABLE', `${shown(url)} answered HTTP ${response.status}`)
  }
  const tooLarge = (bytes) =>
    codedError('ERR_AUDIO_UNREADABLE', `the audio at ${shown(url)} is larger than this worker's maxUrlBytes (${max} bytes${bytes ? `; it announces ${bytes}` : ''})`)
  const declared = Number(response.headers.get('content-length'))
  if (declared > max) {
    controller.abort(tooLarge(declared))
    throw tooLarge(declared)
  }
  const chunks = []
  let total = 0
  try {
    for await (const chunk of response.body) {
      total += chunk.length
      if (total > max) {
        const err = tooLarge()
        controller.abort(err)
        throw err
      }
      chunks.push(chunk)
    }
  } catch (err) {
    if (err.code || controller.signal.aborted) throw err
    throw codedError('ERR_DOWNLOAD_FAILED', `the download from ${shown(url)} broke off: ${err.message}`)
  }
  return Buffer.concat(chunks, total)
}

module.exports = { jobAudio, AUDIO_DEFAULTS, codedError }
