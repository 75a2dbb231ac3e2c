'use strict'
// Live dictation's JavaScript face: the native session as an EventEmitter
// whose end() is a Promise of the finals. engine.listen() returns it at once;
// what is written before the native session is running is held, in order.
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

/** A copy of what write() was given (the caller may reuse its buffer). */
function copyOf(samples) {
  if (samples instanceof Float32Array) return samples.slice()
  if (samples instanceof Int16Array) return samples.slice()
  return Uint8Array.prototype.slice.call(samples)
}

/**
 * Audio in as it is recorded; text out: 'speechStart', 'partial' (while
 * someone speaks), 'speechEnd', 'final' (once they pause), 'error' (an
 * utterance that could not be transcribed, or the session failing), and
 * 'close' last. Made by engine.listen().
 */
class LiveSession extends EventEmitter {
  #native = null
  /** Calls made before the native session runs: ['write', samples] | ['end'] | ['abort']. */
  #pending = []
  #closed = false
  #ending = false
  /** The result once 'close' came: { finals } or { error }. */
  #outcome = null
  #finals = []
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
    for (const [call, samples] of this.#pending.splice(0)) {
      if (call === 'write') native.write(samples)
      else native[call]()
    }
    return (event) => this.#deliver(event)
  }

  /** Called by listen() when the session could not start: it closes with `error`. */
  fail(error) {
    this.#pending = []
    this.#emitSafely('error', error)
    this.#close({ error })
  }

  /** True once the session is over: no more writes are taken. */
  get closed() {
    return this.#closed
  }

  /**
   * Queues samples at the session's sampleRate, mono. Returns false (and
   * emits 'error', ERR_INVALID_OPTIONS) for anything else, and false once
   * the session is over or end() was called.
   */
  write(samples) {
    if (this.#closed || this.#ending) return false
    if (!(samples instanceof Float32Array || samples instanceof Int16Array || samples instanceof Uint8Array)) {
      this.#emitSafely('error', codedError('ERR_INVALID_OPTIONS', `invalid option \`samples\`: write() takes ${KINDS} (got ${describe(samples)})`))
      return false
    }
    if (!this.#native) {
      this.#pending.push(['write', copyOf(samples)])
      return true
    }
    return this.#native.write(samples)
  }

  /**
   * No more audio: the utterance under way is finished. Resolves with the
   * session's finals ({ utterance, text, segments, language, startMs, endMs },
   * in order) once the last has been emitted; rejects with the error that
   * ended the session (ERR_ABORTED after abort()).
   */
  end() {
    if (!this.#outcome && !this.#ending) {
      this.#ending = true
      if (this.#native) this.#native.end()
      else this.#pending.push(['end'])
    }
    return this.#settled()
  }

  /** Stops at once: transcriptions in flight are aborted; 'close' follows. */
  abort() {
    if (this.#closed) return
    if (this.#native) this.#native.abort()
    else this.#pending.push(['abort'])
  }

  #settled() {
    if (this.#outcome) {
      return this.#outcome.error ? Promise.reject(this.#outcome.error) : Promise.resolve(this.#outcome.finals)
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }))
  }

  #close(value) {
    this.#closed = true
    this.#outcome = value.error ? { error: value.error } : { finals: this.#finals.slice() }
    this.#native?.detach()
    for (const w of this.#waiters.splice(0)) value.error ? w.reject(value.error) : w.resolve(this.#outcome.finals)
    this.#emitSafely('close', value)
  }

  #deliver(event) {
    const value = payload(event)
    if (event.type === 'close') return this.#close(value)
    if (event.type === 'final') this.#finals.push(value)
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
