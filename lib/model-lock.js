'use strict'
// The lock that lets one process at a time download a model into a folder
// that other processes, and other users, may share: `<file>.lock`.
//
// - It appears whole or not at all: its content (pid, host, a random token)
//   is written to a private temporary file first, then hard-linked to the
//   lock's name, which fails if a lock is there. An empty lock is therefore
//   never one of ours; one left by an older version, killed between creating
//   and writing it, is stale after a short grace.
// - Its holder refreshes its time every HEARTBEAT_MS. A lock is stale when its
//   holder is dead (same host) or when nobody refreshed it for STALE_MS (a
//   reused pid, another machine on a shared folder, a frozen holder).
// - Taking over a stale lock is atomic: only the waiter that creates
//   `<file>.lock.break` (exclusively, as above) may remove the lock, and only
//   after judging it stale again while it holds that: two waiters that found
//   the same dead holder never both take over.
// - Nothing here follows a symlink or opens a FIFO someone planted: names are
//   created exclusively (O_EXCL), locks are read with O_NOFOLLOW|O_NONBLOCK.
const fs = require('node:fs')
const os = require('node:os')
const { randomBytes } = require('node:crypto')
const { codedError } = require('./download-errors')

/** How often a waiter looks at the lock again. */
const POLL_MS = 200
/** How often the holder refreshes the lock's time. */
const HEARTBEAT_MS = 5_000
/** A lock nobody refreshed for this long is stale, whatever its pid says. */
const STALE_MS = 30_000
/** An empty or unreadable lock older than this is stale. */
const UNREADABLE_GRACE_MS = 2_000
/** Breaking a lock takes microseconds; a break file older than this was left by a crash. */
const BREAK_STALE_MS = 10_000

const HOST = os.hostname().replace(/\s+/g, '_') || 'localhost'
const { O_RDONLY, O_NOFOLLOW = 0, O_NONBLOCK = 0 } = fs.constants

/** True when process `pid` runs on this machine. */
function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

/** Creates `file` holding `content`, atomically; false if it exists. */
function createWhole(file, content) {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`
  fs.writeFileSync(temp, content, { flag: 'wx', mode: 0o644 })
  try {
    fs.linkSync(temp, file)
    return true
  } catch (err) {
    if (err.code === 'EEXIST') return false
    if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV'].includes(err.code)) throw err
    // A filesystem without hard links (FAT, some network shares): exclusive
    // create, then write; the grace for unreadable locks covers the gap.
    try {
      fs.writeFileSync(file, content, { flag: 'wx', mode: 0o644 })
      return true
    } catch (e) {
      if (e.code === 'EEXIST') return false
      throw e
    }
  } finally {
    fs.rmSync(temp, { force: true })
  }
}

/** What a lock file says, read without following links or blocking; undefined if there is none. */
function inspect(file, now = Date.now()) {
  let stat
  try {
    stat = fs.lstatSync(file)
  } catch (err) {
    if (err.code === 'ENOENT') return undefined
    throw err
  }
  const age = now - stat.mtimeMs
  const found = { dev: stat.dev, ino: stat.ino, age }
  let text = ''
  if (stat.isFile()) {
    try {
      const fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
      try {
        const head = Buffer.alloc(256)
        text = head.toString('utf8', 0, fs.readSync(fd, head, 0, head.length, 0))
      } finally {
        fs.closeSync(fd)
      }
    } catch (err) {
      if (err.code === 'ENOENT') return undefined
    }
  }
  const m = /^(\d+)(?: (\S+) (\S+))?[ \t\r]*(?:\n|$)/.exec(text)
  const pid = m ? Number(m[1]) : NaN
  if (!(Number.isSafeInteger(pid) && pid > 0)) return { ...found, stale: age > UNREADABLE_GRACE_MS }
  const [, , host, token] = m
  if (host === undefined) {
    // An older version's lock (just a pid, no heartbeat): its holder's life decides.
    return { ...found, pid, stale: !alive(pid) }
  }
  return { ...found, pid, token, stale: (host === HOST && !alive(pid)) || age > STALE_MS }
}

/** Removes the stale `file` found before, if it is still that one: renamed aside first, so only one remover wins. */
function removeIfStill(file, found) {
  const aside = `${file}.${randomBytes(6).toString('hex')}.stale`
  try {
    fs.renameSync(file, aside)
  } catch (err) {
    if (err.code === 'ENOENT') return
    throw err
  }
  const moved = fs.lstatSync(aside)
  if (moved.ino !== found.ino || moved.dev !== found.dev) {
    // Someone replaced it meanwhile: put theirs back.
    try {
      fs.linkSync(aside, file)
    } catch {
      // A third one is there already; theirs stands.
    }
  }
  fs.rmSync(aside, { force: true })
}

/**
 * Removes the stale lock `found`, if this waiter wins the right to (the
 * break file) and the lock is still that one and still stale. True when the
 * lock is gone or changed (worth trying again at once).
 */
function breakStale(lockFile, found, content) {
  const breaker = `${lockFile}.break`
  if (!createWhole(breaker, content)) {
    const other = inspect(breaker)
    if (other && other.age > BREAK_STALE_MS) removeIfStill(breaker, other)
    return false
  }
  try {
    const now = inspect(lockFile)
    if (!now || now.ino !== found.ino || now.dev !== found.dev) return true // changed: look again at once
    if (!now.stale) return false
    fs.rmSync(lockFile, { force: true })
    return true
  } finally {
    fs.rmSync(breaker, { force: true })
  }
}

/** Resolves after `ms`, or rejects when `signal` aborts; leaves no listener on `signal` either way. */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Holds `lockFile` until the returned release() is called: waits while a
 * live holder has it, takes it over when its holder is gone. Rejects with
 * `onAbort()`'s error when `signal` aborts, and with ERR_DOWNLOAD_FAILED when
 * the folder does not let it create the lock.
 */
async function acquireLock(lockFile, signal, onAbort) {
  const token = randomBytes(8).toString('hex')
  const content = `${process.pid} ${HOST} ${token}\n`
  for (;;) {
    if (signal?.aborted) throw onAbort()
    let again
    try {
      if (createWhole(lockFile, content)) return holding(lockFile, token)
      const found = inspect(lockFile)
      again = !found || (found.stale && breakStale(lockFile, found, content))
    } catch (err) {
      throw codedError('ERR_DOWNLOAD_FAILED', `cannot create the lock ${lockFile}: ${err.message}. Check that the folder is writable`, err)
    }
    if (again) continue
    try {
      await sleep(POLL_MS, signal)
    } catch {
      throw onAbort()
    }
  }
}

/** The holder's side: a heartbeat, and a release that removes only its own lock. */
function holding(lockFile, token) {
  const heartbeat = setInterval(() => {
    const now = new Date()
    fs.lutimes(lockFile, now, now, () => {})
  }, HEARTBEAT_MS)
  heartbeat.unref()
  return function release() {
    clearInterval(heartbeat)
    try {
      if (inspect(lockFile)?.token === token) fs.rmSync(lockFile, { force: true })
    } catch {
      // Already gone, or the folder went read-only: nothing to release.
    }
  }
}

module.exports = { acquireLock, STALE_MS }
