// A throw-away Redis for the fleet tests and the fleet benchmark: Debian's
// redis-server on a free loopback port, with a random password (other local
// users can reach 127.0.0.1), its data in a temp folder with the append-only
// file on and fsync'd at every write, so that a restart keeps every job.
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A port nothing listens on now (the OS's choice). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** Resolves true once Redis answers PING with PONG (or with NOAUTH: it is up and wants the password). */
function answers(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let reply = ''
    const done = (value) => {
      socket.destroy()
      resolve(value)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once('error', () => done(false))
    socket.on('data', (d) => {
      reply += d
      if (reply.includes('\r\n')) done(/^(\+PONG|-NOAUTH)/.test(reply))
    })
    socket.once('connect', () => socket.write('PING\r\n'))
  })
}

/**
 * Starts redis-server; resolves with { port, password, connection, dir,
 * pid, stop(), restart() }. stop() is a clean shutdown (SIGTERM: the
 * append-only file is flushed); restart() starts it again on the same port
 * and folder, with the same data.
 */
export async function startRedis() {
  if (spawnSync('redis-server', ['--version']).error) {
    throw new Error('cannot start redis-server: the fleet tests need it on the PATH (Debian: apt-get install redis-server)')
  }
  const dir = mkdtempSync(join(tmpdir(), 'pw-fleet-redis-'))
  const password = randomBytes(16).toString('hex')
  const port = await freePort()
  // In a file (mode 0600), not on the command line that every local user can read.
  const conf = join(dir, 'redis.conf')
  writeFileSync(
    conf,
    [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'appendonly yes', 'appendfsync always', 'save ""', `requirepass ${password}`, 'daemonize no', 'logfile ""', 'loglevel warning'].join('\n') + '\n',
    { mode: 0o600 },
  )
  let child = null
  let log = ''

  async function start() {
    // Under a shell that stops it (SIGTERM) when its stdin closes: when stop()
    // closes it, and when this process dies, so that no Redis outlives a test.
    // The shell exits when Redis does.
    child = spawn('sh', ['-c', 'exec 3<&0; redis-server "$1" & r=$!; (cat <&3 >/dev/null; kill $r 2>/dev/null) & wait $r', 'sh', conf], { stdio: ['pipe', 'pipe', 'pipe'] })
    child.stdin.on('error', () => {}) // the shell may be gone already
    child.stdout.on('data', (d) => (log = (log + d).slice(-4000)))
    child.stderr.on('data', (d) => (log = (log + d).slice(-4000)))
    const exited = new Promise((resolve) => child.once('exit', resolve))
    const deadline = Date.now() + 15_000
    for (;;) {
      if (child.exitCode !== null) {
        child.stdin.end()
        throw new Error(`redis-server exited at start (code ${child.exitCode}):\n${log}`)
      }
      if (await answers(port)) break
      if (Date.now() > deadline) {
        await stop()
        throw new Error(`redis-server did not answer on port ${port}:\n${log}`)
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 50))])
    }
  }

  async function stop() {
    if (!child) return
    const exited = child.exitCode === null && child.signalCode === null && new Promise((resolve) => child.once('exit', resolve))
    child.stdin.end()
    await exited
  }

  await start()
  return {
    port,
    password,
    dir,
    /** BullMQ's connection options for this Redis. */
    connection: { host: '127.0.0.1', port, password },
    get pid() {
      return child.pid
    },
    stop,
    async restart() {
      await stop()
      await start()
    },
    /** Stops it and deletes its folder. */
    async remove() {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
