'use strict'
// Live dictation's JavaScript face: the native session as an EventEmitter
// whose end() is a Promise. See engine.listen() in index.js.
const { EventEmitter } = require('node:events')

const KINDS = 'a Float32Array, an Int16Array, or a Buffer/Uint8Array of 16-bit little-endian samples'

function codedError(code, message, fields) {
  const err = new Error(message)
  err.code = code
  return Object.assign(err, fields)
}

function describe(value) {
  if (value === null) return 'null'
  if (ArrayBuffer.isView(value)) return `a ${value.constructor?.name ?? 'typed array'}`
  return typeof value === 'object' ? 'an object that is not a typed array' : `a ${typeof value}`
}

/** A live session's event as its listeners get it. */
function payload(event) {
  const { type, code, message, ...fields } = event
  for (const key of Object.keys(fields)) if (fields[key] === undefined || fields[key] === null) delete fields[key]
  if (type === 'error') return codedError(code, message, 'utterance' in fields ? { utterance: fields.utterance } : {})
  if (type === 'close' && code) return { error: codedError(code, message) }
  return fields
}

/**
 * Audio in as it is recorded; text out: 'speechstart', 'partial' (while
 * someone speaks), 'speechend', 'final' (once they pause), 'error' (an
 * utterance that could not be transcribed, or the session failing), and
 * 'close' last. Created by engine.listen().
 */
class LiveSession extends EventEmitter {
  #native = null
  #closed = false
  /** The result once 'close' came: { summary } or { error }. */
  #outcome = null
  #waiters = []
  #report

  /** @param report where a listener's throw or an unheard error is reported */
  constructor(report) {
    super()
    this.#report = report
  }

  /** Called once by listen(): the native session, and where its events come in. */
  attach(native) {
    this.#native = native
    return (event) => this.#deliver(event)
  }

  /** True once the session is over: no more writes are taken. */
  get closed() {
    return this.#closed
  }

  /**
   * Queues samples at the session's sampleRate, mono. Returns false (and
   * emits 'error', ERR_INVALID_OPTIONS) for anything else, and false once
   * the session is over.
   */
  write(samples) {
    if (this.#closed) return false
    if (!(samples instanceof Float32Array || samples instanceof Int16Array || samples instanceof Uint8Array)) {
      this.#emitSafely('error', codedError('ERR_INVALID_OPTIONS', `invalid option \`samples\`: write() takes ${KINDS} (got ${describe(samples)})`))
      return false
    }
    return this.#native.write(samples)
  }

  /**
   * No more audio: the utterance under way is finished. Resolves with
   * { utterances, durationMs } once every final has been emitted; rejects
   * with the error that ended the session (ERR_ABORTED after abort()).
   */
  end() {
    if (!this.#outcome) this.#native.end()
    return this.#settled()
  }

  /** Stops at once: transcriptions in flight are aborted; 'close' follows. */
  abort() {
    if (!this.#closed) this.#native.abort()
  }

  #settled() {
    if (this.#outcome) {
      return this.#outcome.error ? Promise.reject(this.#outcome.error) : Promise.resolve(this.#outcome.summary)
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }))
  }

  #deliver(event) {
    const value = payload(event)
    if (event.type === 'close') {
      this.#closed = true
      this.#outcome = value.error ? { error: value.error } : { summary: value }
      this.#native.detach()
      for (const w of this.#waiters.splice(0)) value.error ? w.reject(value.error) : w.resolve(value)
    }
    this.#emitSafely(event.type, value)
  }

  /** Each listener called; one that throws is reported and changes nothing. */
  #emitSafely(type, value) {
    const listeners = this.rawListeners(type)
    if (type === 'error' && listeners.length === 0) {
      // Node would throw an unheard 'error'; a failed utterance must not crash the app.
      this.#report(`live session: ${value.code}: ${value.message}`)
      return
    }
    for (const listener of listeners) {
      try {
        listener.call(this, value)
      } catch (err) {
        this.#report(`a live session's '${type}' listener threw: ${err?.stack ?? err}`)
      }
    }
  }
}

module.exports = { LiveSession }
