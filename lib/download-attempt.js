'use strict'
// One attempt at a model download: continues `<file>.part` from its length
// with an HTTP Range request, or starts it over, and holds the server to what
// it and the caller said:
// - no byte for `idleTimeout` ms (connecting, waiting for headers, or
//   mid-body) ends the attempt, so a silent server cannot hold the download
//   (and its lock) forever;
// - a 206 is used from where its Content-Range starts: earlier than asked
//   rewrites the overlap, later (a gap) starts the file over;
// - never more bytes than the declared size (or the catalogue's bound) or
//   than the response's own Content-Length / Content-Range: a total above
//   the limit is refused before a byte is written, a body that runs on is
//   cut at the limit;
// - the .part is opened without following a symlink and without blocking on
//   a FIFO that someone planted in a shared folder (such a thing is removed).
const fs = require('node:fs')
const { get } = require('./http-get')
const { codedError, finalError } = require('./download-errors')

const { O_RDWR, O_RDONLY, O_CREAT, O_NOFOLLOW = 0, O_NONBLOCK = 0 } = fs.constants

/** The .part, opened for reading and writing as a plain file of ours. */
async function openPart(part, flags = O_RDWR | O_CREAT) {
  let stat
  try {
    stat = await fs.promises.lstat(part)
  } catch (err) {
    if (err.code !== 'ENOENT') throw err
  }
  // A symlink, FIFO or device where the .part goes was planted: remove it, never follow or open it.
  if (stat && !stat.isFile()) await fs.promises.unlink(part)
  const handle = await fs.promises.open(part, flags | O_NOFOLLOW | O_NONBLOCK, 0o644)
  if (!(await handle.stat()).isFile()) {
    await handle.close()
    throw new Error(`${part} is not a regular file`)
  }
  return handle
}

/** The checksum and size of the .part, read back through a descriptor that follows no link. */
async function digestOf(part, hash) {
  const handle = await fs.promises.open(part, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
  try {
    const stat = await handle.stat()
    if (!stat.isFile()) throw new Error(`${part} is not a regular file`)
    for await (const chunk of handle.createReadStream({ autoClose: false, start: 0 })) hash.update(chunk)
    return { digest: hash.digest('hex'), size: stat.size }
  } finally {
    await handle.close()
  }
}

/**
 * An AbortSignal for one attempt: aborts with the caller's signal, or when
 * touch() has not been called for `ms` (reason: an Error with `idle` set).
 */
function idleWatch(ms, outer) {
  const controller = new AbortController()
  const onAbort = () => controller.abort(outer.reason)
  outer?.addEventListener('abort', onAbort, { once: true })
  if (outer?.aborted) onAbort()
  const timer = setTimeout(() => {
    const err = new Error(`no data for ${ms / 1000} s`)
    err.idle = true
    controller.abort(err)
  }, ms)
  return {
    signal: controller.signal,
    touch: () => timer.refresh(),
    stop: () => {
      clearTimeout(timer)
      outer?.removeEventListener('abort', onAbort)
    },
  }
}

/** { start, end, total } of a `bytes a-b/c` Content-Range (c may be '*'), or undefined. */
function contentRange(value) {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value ?? '')
  if (!m) return undefined
  const [start, end, total] = [Number(m[1]), Number(m[2]), m[3] === '*' ? undefined : Number(m[3])]
  if (end < start || (total !== undefined && end >= total)) return undefined
  return { start, end, total }
}

/** A retryable failure that also empties the .part, so the next attempt starts at byte 0. */
function startOver(message) {
  const err = new Error(message)
  err.startOver = true
  return err
}

/**
 * One attempt. `spec`: { url, size?, maxBytes?, what }. Resolves when the
 * body has arrived whole; rejects with a retryable Error, or an Error with
 * `final` that another attempt would only repeat.
 */
async function attempt(spec, part, { signal, idleTimeout, report }) {
  // The most bytes the file may have: the caller's size, else the catalogue's bound.
  const limit = spec.size ?? spec.maxBytes
  const limitName = spec.size !== undefined ? `the ${spec.size} bytes declared (size)` : `the catalogue's bound for ${spec.what}, ${spec.maxBytes} bytes`
  const handle = await openPart(part)
  const watch = idleWatch(idleTimeout, signal)
  try {
    let have = (await handle.stat()).size
    if (limit !== undefined && have > limit) {
      await handle.truncate(0)
      have = 0
    }
    const { response } = await get(spec.url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {}, signal: watch.signal })
    watch.touch()
    const status = response.statusCode
    if (status === 416 && have > 0) {
      response.resume()
      const range = /^bytes \*\/(\d+)$/.exec(response.headers['content-range'] ?? '')
      // Nothing left to send: the .part is whole (or wrong, which the checksum says).
      if (!range || Number(range[1]) === have) return
      throw startOver(`the server has ${range[1]} bytes, not the ${have} already here`)
    }
    if (status !== 200 && status !== 206) {
      response.resume()
      const message = `downloading ${spec.url} failed: HTTP ${status}${status === 404 ? ' (no such file: check the URL or the model name)' : ''}`
      if (status >= 400 && status < 500) throw finalError(message)
      throw codedError('ERR_DOWNLOAD_FAILED', message)
    }
    const declared = Number(response.headers['content-length'] ?? NaN)
    const length = Number.isSafeInteger(declared) && declared >= 0 ? declared : undefined
    // Where this body starts, where it must end, and the file's size, by the headers.
    let start = 0
    let bodyEnd = length
    let total = length
    if (status === 206) {
      const range = contentRange(response.headers['content-range'])
      if (!range || (length !== undefined && length !== range.end - range.start + 1)) {
        response.destroy()
        throw startOver(`the server's 206 answer has no usable Content-Range (${response.headers['content-range']})`)
      }
      if (range.start > have) {
        response.destroy()
        throw startOver(`asked for bytes from ${have}, the server sent them from ${range.start}`)
      }
      ;({ start, total } = range)
      bodyEnd = range.end + 1
    }
    if (limit !== undefined && total !== undefined && total > limit) {
      response.destroy()
      throw finalError(`${spec.url} is ${total} bytes by the server's headers, more than ${limitName}; nothing was written`, { discard: true })
    }
    if (spec.size !== undefined && total !== undefined && total !== spec.size) {
      response.destroy()
      throw finalError(`${spec.url} is ${total} bytes by the server's headers, not ${limitName}`, { discard: true })
    }
    if (start < have) await handle.truncate(start)
    const known = total ?? spec.size
    let at = start
    report(at, known)
    for await (const chunk of response) {
      watch.touch()
      if (bodyEnd !== undefined && at + chunk.length > bodyEnd) {
        throw finalError(`${spec.url} sent more than its headers announced (${bodyEnd - start} bytes from byte ${start}); stopped there`, { discard: true })
      }
      if (limit !== undefined && at + chunk.length > limit) {
        throw finalError(`${spec.url} sent more than ${limitName}; stopped there`, { discard: true })
      }
      await handle.write(chunk, 0, chunk.length, at)
      at += chunk.length
      report(at, known)
    }
    if (bodyEnd !== undefined && at < bodyEnd) throw new Error(`the connection closed after ${at} of ${known ?? bodyEnd} bytes`)
  } catch (err) {
    if (watch.signal.aborted && watch.signal.reason?.idle && !signal?.aborted) throw watch.signal.reason
    if (err.startOver) await handle.truncate(0)
    throw err
  } finally {
    watch.stop()
    await handle.close()
  }
}

module.exports = { attempt, digestOf, openPart }
