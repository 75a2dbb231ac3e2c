// Downloads against servers that misbehave and a model folder another local
// user can write: proxy credentials kept from the origin, lock files that are
// empty, stale or raced for, symlinks and FIFOs planted beside the model,
// servers that stall, send too much or resume from the wrong offset, and URLs
// with bad escapes. The bytes are random (nothing here loads a model), so
// this file needs neither the addon nor whisper.cpp.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { getEventListeners } from 'node:events'
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { createServer, request } from 'node:http'
import { createServer as createTcpServer } from 'node:net'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { faultServer } from './model-server.mjs'

const require = createRequire(import.meta.url)
const MODELS = require.resolve('../lib/models.js')
const { downloadModel, listModels } = require(MODELS)

const T = { timeout: 120_000 }
const BODY = randomBytes(300_000)
const SHA256 = createHash('sha256').update(BODY).digest('hex')
const scratch = () => mkdtempSync(join(tmpdir(), 'pw-faults-'))

/** Rejection with its code, for assert.rejects. */
const withCode = (code) => (err) => {
  if (!(err instanceof Error)) throw new Error(`expected an Error, got ${err}`)
  if (err.code !== code) throw new Error(`expected code ${code}, got ${err.code}: ${err.message}`)
  return true
}

/** The promise's outcome, or a failure if it is still pending after `ms`: the hole is a download that never settles. */
async function within(ms, promise) {
  let timer
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

/** Runs `fn` with environment variables set, then restores them. */
async function withEnv(vars, fn) {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  Object.assign(process.env, vars)
  try {
    return await fn()
  } finally {
    for (const [k, v] of Object.entries(saved)) v === undefined ? delete process.env[k] : (process.env[k] = v)
  }
}

/** Answers like Hugging Face: 200 with the whole body, or 206 from a `bytes=N-` Range. */
function serveWhole(req, res, body = BODY) {
  const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0)
  if (req.headers.range) {
    res.writeHead(206, { 'Content-Length': body.length - start, 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` })
  } else {
    res.writeHead(200, { 'Content-Length': body.length })
  }
  res.end(body.subarray(start))
}

/** A process id that no process has: one that has just exited. */
function deadPid() {
  const r = spawnSync(process.execPath, ['-e', ''])
  return r.pid
}

test('credentials in HTTP_PROXY reach the proxy as Proxy-Authorization, never the origin as Authorization', T, async () => {
  const origin = await faultServer((req, res) => serveWhole(req, res))
  const atProxy = []
  // A forwarding proxy that consumes its own credentials and passes the rest on.
  const proxy = createServer((req, res) => {
    atProxy.push({ ...req.headers })
    const { 'proxy-authorization': _, ...headers } = req.headers
    const upstream = request(req.url, { method: req.method, headers }, (r) => {
      res.writeHead(r.statusCode, r.headers)
      r.pipe(res)
    })
    req.pipe(upstream)
  })
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  try {
    const proxyUrl = `http://user:s%40cret@127.0.0.1:${proxy.address().port}`
    const file = await withEnv({ HTTP_PROXY: proxyUrl, NO_PROXY: '' }, () => downloadModel({ url: `${origin.base}/m.bin`, sha256: SHA256 }, { dir: scratch() }))
    assert.ok(readFileSync(file).equals(BODY))
    assert.equal(atProxy.length, 1)
    assert.equal(atProxy[0]['proxy-authorization'], `Basic ${Buffer.from('user:s@cret').toString('base64')}`)
    assert.equal(atProxy[0].authorization, undefined, 'the proxy credentials were also sent as Authorization, for the origin')
    assert.equal(origin.requests[0].authorization, undefined)
  } finally {
    proxy.closeAllConnections()
    await new Promise((resolve) => proxy.close(resolve))
    await origin.close()
  }
})

test('an empty lock file (its holder killed before it wrote its pid) is taken over', T, async () => {
  const server = await faultServer((req, res) => serveWhole(req, res))
  const dir = scratch()
  writeFileSync(join(dir, 'm.bin.lock'), '')
  try {
    const file = await within(20_000, downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256 }, { dir }))
    assert.ok(readFileSync(file).equals(BODY))
    assert.deepEqual(readdirSync(dir), ['m.bin'])
  } finally {
    await server.close()
  }
})

test('a lock its holder stopped refreshing (a reused pid, another machine) is taken over', T, async () => {
  const server = await faultServer((req, res) => serveWhole(req, res))
  const dir = scratch()
  const lock = join(dir, 'm.bin.lock')
  // A live pid (this process's), but the lock has not been refreshed for ten minutes.
  writeFileSync(lock, `${process.pid} ${hostname()} someone-else\n`)
  const old = new Date(Date.now() - 600_000)
  utimesSync(lock, old, old)
  try {
    const file = await within(20_000, downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256 }, { dir }))
    assert.ok(readFileSync(file).equals(BODY))
  } finally {
    await server.close()
  }
})

test('waiting for a lock keeps its abort listeners to one or two, not one more per poll', T, async () => {
  const dir = scratch()
  // Held by a live process (this one, in the old one-line format) for as long as the test wants.
  writeFileSync(join(dir, 'm.bin.lock'), `${process.pid}\n`)
  const controller = new AbortController()
  const download = downloadModel({ url: 'http://127.0.0.1:9/m.bin', sha256: SHA256 }, { dir, signal: controller.signal })
  // Watch the listeners over 1.5 s of waiting (several polls of the lock).
  let most = 0
  const until = Date.now() + 1500
  while (Date.now() < until) {
    most = Math.max(most, getEventListeners(controller.signal, 'abort').length)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  assert.ok(most <= 2, `${most} abort listeners after 1.5 s of waiting`)
  controller.abort()
  await assert.rejects(download, withCode('ERR_ABORTED'))
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0, 'no listener left once settled')
})

test('waiters that all find the same dead holder: exactly one takes over, one download, one intact file', T, async () => {
  const server = await faultServer((req, res) => {
    // Slowly, so that every waiter looks while the first one downloads.
    res.writeHead(200, { 'Content-Length': BODY.length })
    let at = 0
    const timer = setInterval(() => {
      res.write(BODY.subarray(at, (at += 30_000)))
      if (at >= BODY.length) {
        clearInterval(timer)
        res.end()
      }
    }, 50)
    res.on('close', () => clearInterval(timer))
  })
  try {
    for (let round = 0; round < 3; round++) {
      const dir = scratch()
      // The dead holder's lock, padded: reading it takes a while, which widens
      // the window between judging it stale and replacing it.
      writeFileSync(join(dir, 'm.bin.lock'), `${deadPid()}\n${' '.repeat(64 * 1024 * 1024)}`)
      const before = server.requests.length
      const script = `require(${JSON.stringify(MODELS)}).downloadModel({ url: ${JSON.stringify(`${server.base}/m.bin`)}, sha256: ${JSON.stringify(SHA256)} }, { dir: ${JSON.stringify(dir)} }).then((f) => console.log(f), (e) => { console.error(e.code, e.message); process.exit(1) })`
      const children = Array.from({ length: 4 }, () => spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] }))
      const results = await within(
        60_000,
        Promise.all(
          children.map(
            (child) =>
              new Promise((resolve) => {
                let out = ''
                child.stdout.on('data', (d) => (out += d))
                child.stderr.on('data', (d) => (out += d))
                child.on('exit', (code) => resolve({ code, out }))
              }),
          ),
        ),
      )
      for (const r of results) assert.equal(r.code, 0, r.out)
      assert.ok(readFileSync(join(dir, 'm.bin')).equals(BODY))
      assert.equal(server.requests.length - before, 1, `round ${round}: ${server.requests.length - before} downloads for one file`)
      assert.deepEqual(readdirSync(dir), ['m.bin'])
    }
  } finally {
    await server.close()
  }
})

test('a .part planted as a symlink is not written through; nor is a dangling symlink at the final name', T, async () => {
  const server = await faultServer((req, res) => serveWhole(req, res))
  const dir = scratch()
  const elsewhere = scratch()
  const victim = join(elsewhere, 'victim')
  writeFileSync(victim, 'precious')
  symlinkSync(victim, join(dir, 'm.bin.part'))
  symlinkSync(join(elsewhere, 'created'), join(dir, 'other.bin'))
  try {
    const file = await within(20_000, downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256 }, { dir }))
    assert.equal(readFileSync(victim, 'utf8'), 'precious', 'the download wrote through the planted link')
    assert.ok(readFileSync(file).equals(BODY))
    assert.ok(lstatSync(file).isFile())
    const other = await within(20_000, downloadModel({ url: `${server.base}/other.bin`, sha256: SHA256 }, { dir }))
    assert.ok(lstatSync(other).isFile(), 'the final file replaces the link')
    assert.ok(!existsSync(join(elsewhere, 'created')))
    assert.deepEqual(readdirSync(elsewhere), ['victim'])
  } finally {
    await server.close()
  }
})

test('a FIFO planted as the .part does not block the download', T, async () => {
  const server = await faultServer((req, res) => serveWhole(req, res))
  const dir = scratch()
  assert.equal(spawnSync('mkfifo', [join(dir, 'm.bin.part')]).status, 0)
  try {
    const file = await within(20_000, downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256 }, { dir }))
    assert.ok(readFileSync(file).equals(BODY))
  } finally {
    await server.close()
  }
})

test('a server that sends its headers and 1000 bytes, then nothing: ERR_DOWNLOAD_FAILED after the Range retries', T, async () => {
  const server = await faultServer((req, res) => {
    const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0)
    res.writeHead(start ? 206 : 200, {
      'Content-Length': BODY.length - start,
      ...(start ? { 'Content-Range': `bytes ${start}-${BODY.length - 1}/${BODY.length}` } : {}),
    })
    res.write(BODY.subarray(start, start + 1000)) // and then silence
  })
  const dir = scratch()
  try {
    const started = Date.now()
    await assert.rejects(
      within(20_000, downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256 }, { dir, idleTimeout: 300 })),
      (err) => withCode('ERR_DOWNLOAD_FAILED')(err) && /no data for 0\.3 s/.test(err.message),
    )
    assert.ok(Date.now() - started < 10_000)
    assert.deepEqual(
      server.requests.map((r) => r.range),
      [undefined, 'bytes=1000-', 'bytes=2000-', 'bytes=3000-'],
    )
    assert.deepEqual(readdirSync(dir), ['m.bin.part'], 'no lock left; what arrived is kept for the next call')
    assert.equal(statSync(join(dir, 'm.bin.part')).size, 4000)
  } finally {
    await server.close()
  }
})

test('a server that accepts the connection and never answers: ERR_DOWNLOAD_FAILED, the lock released', T, async () => {
  const sockets = []
  const server = createTcpServer((socket) => sockets.push(socket))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const dir = scratch()
  try {
    await assert.rejects(
      within(20_000, downloadModel({ url: `http://127.0.0.1:${server.address().port}/m.bin`, sha256: SHA256 }, { dir, idleTimeout: 300 })),
      withCode('ERR_DOWNLOAD_FAILED'),
    )
    assert.equal(sockets.length, 4, 'each attempt connected once')
    assert.ok(!existsSync(join(dir, 'm.bin.lock')))
  } finally {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  }
})

test('a stall mid-file, then a working resume: the file arrives whole; idleTimeout is checked', T, async () => {
  const server = await faultServer((req, res, n) => {
    if (n > 0) return serveWhole(req, res)
    res.writeHead(200, { 'Content-Length': BODY.length })
    res.write(BODY.subarray(0, 1000))
  })
  const dir = scratch()
  try {
    const file = await within(20_000, downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256 }, { dir, idleTimeout: 300 }))
    assert.ok(readFileSync(file).equals(BODY))
    assert.deepEqual(server.requests.map((r) => r.range), [undefined, 'bytes=1000-'])
    for (const bad of [0, -1, 'soon', Infinity, 1.5]) {
      await assert.rejects(downloadModel({ url: `${server.base}/x.bin`, sha256: SHA256 }, { dir, idleTimeout: bad }), withCode('ERR_INVALID_OPTIONS'), String(bad))
    }
  } finally {
    await server.close()
  }
})

/** A server that streams `bytes` bytes without a Content-Length (chunked), in 64 kB writes. */
function endless(bytes, headers = {}) {
  return (req, res) => {
    res.writeHead(200, headers)
    let sent = 0
    const more = () => {
      while (sent < bytes && !res.destroyed) {
        const n = Math.min(65536, bytes - sent)
        sent += n
        if (!res.write(Buffer.alloc(n, 7))) return res.once('drain', more)
      }
      if (!res.destroyed) res.end()
    }
    more()
  }
}

test('a declared size is enforced as bytes arrive: no more on disk, percent never above 100', T, async () => {
  const server = await faultServer(endless(30_000_000))
  const dir = scratch()
  const seen = []
  try {
    await assert.rejects(
      within(20_000, downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256, size: 200_000 }, { dir, onProgress: (p) => seen.push(p) })),
      (err) => withCode('ERR_DOWNLOAD_FAILED')(err) && /200000 bytes/.test(err.message),
    )
    assert.ok(seen.length > 0)
    assert.ok(seen.every((p) => p.bytes <= 200_000 && p.percent <= 100), JSON.stringify(seen.at(-1)))
    assert.deepEqual(readdirSync(dir), [], 'the oversized .part is deleted')
    assert.equal(server.requests.length, 1, 'not retried: the same server would send the same')
  } finally {
    await server.close()
  }
})

test('a Content-Length or Content-Range above the declared size is refused before a byte is written', T, async () => {
  const server = await faultServer((req, res, n) => {
    if (n === 0) return endless(30_000_000, { 'Content-Length': 30_000_000 })(req, res)
    res.writeHead(206, { 'Content-Range': `bytes 0-29999999/30000000` })
    res.end(Buffer.alloc(1000))
  })
  const dir = scratch()
  try {
    for (let i = 0; i < 2; i++) {
      const seen = []
      await assert.rejects(
        within(20_000, downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256, size: 200_000 }, { dir, onProgress: (p) => seen.push(p) })),
        (err) => withCode('ERR_DOWNLOAD_FAILED')(err) && /30000000/.test(err.message) && /200000/.test(err.message),
      )
      assert.ok(seen.every((p) => p.bytes === 0), JSON.stringify(seen.at(-1)))
      assert.deepEqual(readdirSync(dir), [])
    }
  } finally {
    await server.close()
  }
})

test('a resumed body longer than its Content-Range says is cut off there', T, async () => {
  // First a cut after 100 kB; then a 206 whose Content-Range is right but whose (chunked) body runs on.
  const server = await faultServer((req, res, n) => {
    if (n === 0) {
      res.writeHead(200, { 'Content-Length': BODY.length })
      res.write(BODY.subarray(0, 100_000), () => res.destroy())
      return
    }
    const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range)[1])
    res.writeHead(206, { 'Content-Range': `bytes ${start}-${BODY.length - 1}/${BODY.length}` })
    res.write(BODY.subarray(start))
    res.end(Buffer.alloc(5_000_000))
  })
  const dir = scratch()
  const seen = []
  try {
    await assert.rejects(within(20_000, downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256 }, { dir, onProgress: (p) => seen.push(p) })), withCode('ERR_DOWNLOAD_FAILED'))
    assert.ok(seen.every((p) => p.bytes <= BODY.length && p.percent <= 100), JSON.stringify(seen.at(-1)))
  } finally {
    await server.close()
  }
})

test('catalogue downloads stop at the entry\'s upper bound (a bad mirror cannot fill the disk)', T, async () => {
  const dir = scratch()
  const entry = listModels({ dir }).find((m) => m.name === 'tiny.en')
  assert.ok(Number.isSafeInteger(entry.maxBytes) && entry.maxBytes > entry.approxBytes && entry.maxBytes <= entry.approxBytes * 1.25, `${entry.maxBytes}`)
  const server = await faultServer(endless(entry.maxBytes + 4_000_000))
  let most = 0
  try {
    await withEnv({ PERSISTENT_WHISPER_MODEL_BASE_URL: server.base }, () =>
      assert.rejects(
        within(60_000, downloadModel('tiny.en', { dir, onProgress: (p) => (most = Math.max(most, p.bytes)) })),
        (err) => withCode('ERR_DOWNLOAD_FAILED')(err) && err.message.includes(String(entry.maxBytes)),
      ),
    )
    assert.ok(most <= entry.maxBytes, `${most} bytes written`)
    assert.deepEqual(readdirSync(dir), [])
  } finally {
    await server.close()
  }
})

test('a resume answered from another offset than asked is not appended blindly', T, async () => {
  for (const shift of [-5000, 5000]) {
    const server = await faultServer((req, res, n) => {
      if (n === 0) {
        res.writeHead(200, { 'Content-Length': BODY.length })
        res.write(BODY.subarray(0, 100_000), () => res.destroy())
        return
      }
      const asked = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
      if (!asked) return serveWhole(req, res)
      const start = Number(asked[1]) + shift
      res.writeHead(206, { 'Content-Length': BODY.length - start, 'Content-Range': `bytes ${start}-${BODY.length - 1}/${BODY.length}` })
      res.end(BODY.subarray(start))
    })
    try {
      const file = await within(20_000, downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256 }, { dir: scratch() }))
      assert.ok(readFileSync(file).equals(BODY), `shift ${shift}`)
    } finally {
      await server.close()
    }
  }
})

test('a URL whose file name has a bad % escape or a control character is ERR_INVALID_OPTIONS', T, async () => {
  for (const url of ['http://127.0.0.1:9/m%E0%A4%A.bin', 'http://127.0.0.1:9/m%ZZ.bin', 'http://127.0.0.1:9/m%0A.bin', 'http://127.0.0.1:9/m%1B[2J.bin']) {
    await assert.rejects(downloadModel({ url, sha256: SHA256 }, { dir: scratch() }), (err) => withCode('ERR_INVALID_OPTIONS')(err) && /url/.test(err.message), url)
  }
})
