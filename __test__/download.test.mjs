// The model catalogue and downloads, against a local HTTP server serving the
// tiny.en model converted at setup: full, resumed after a cut, checksum
// mismatch, 404, abort, two at once, through a proxy, and catalogue names
// as modelPath.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, copyFileSync } from 'node:fs'
import { createServer, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JFK_WAV, missingPhrases, newEngine, pw, ROOT, TINY_EN, withCode } from './helpers.mjs'
import { modelServer } from './model-server.mjs'
import { VAD_MODEL } from '../scripts/paths.mjs'
import { VAD_SOURCE } from '../scripts/vad-model.mjs'

const T = { timeout: 300_000 }
const MODEL = readFileSync(TINY_EN)
const SHA256 = createHash('sha256').update(MODEL).digest('hex')
const scratch = () => mkdtempSync(join(tmpdir(), 'pw-models-'))

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

test('the catalogue: every entry well-formed, its SHA-1 sums those of the pinned whisper.cpp models/README.md', () => {
  const models = pw.listModels({ dir: scratch() }).filter((m) => m.kind === 'whisper')
  const readme = readFileSync(join(ROOT, '.whisper', 'src', 'whisper.cpp-1.9.1', 'models', 'README.md'), 'utf8')
  const published = Object.fromEntries([...readme.matchAll(/^\| ([\w.-]+)\s+\| [\d.]+ [MG]iB\s+\| `([0-9a-f]{40})` \|$/gm)].map((m) => [m[1], m[2]]))
  assert.ok(Object.keys(published).length >= 16, JSON.stringify(published))
  assert.deepEqual(models.map((m) => m.name).sort(), Object.keys(published).sort())
  for (const m of models) {
    assert.equal(m.sha1, published[m.name], m.name)
    assert.equal(m.file, `ggml-${m.name}.bin`)
    assert.equal(m.url, `https://huggingface.co/ggml-org/whisper.cpp/resolve/main/ggml-${m.name}.bin`)
    assert.ok(Number.isSafeInteger(m.approxBytes) && m.approxBytes > 50e6, `${m.name}: ${m.approxBytes}`)
    assert.equal(m.downloaded, false)
    assert.equal(m.multilingual, !m.name.includes('.en'))
  }
  assert.deepEqual(pw.MODEL_NAMES, models.map((m) => m.name))
})

test('the catalogue\'s Silero VAD model is the file setup converts, byte for byte; downloadModel verifies it by SHA-256', T, async () => {
  const vad = pw.listModels({ dir: scratch() }).filter((m) => m.kind === 'vad')
  assert.deepEqual(vad.map((m) => m.name), ['silero-v6.2.0'])
  const [entry] = vad
  assert.equal(entry.url, 'https://huggingface.co/ggml-org/whisper-vad/resolve/main/ggml-silero-v6.2.0.bin')
  assert.equal(entry.sha256, VAD_SOURCE.sha256)
  assert.equal(entry.approxBytes, VAD_SOURCE.bytes)
  const local = readFileSync(VAD_MODEL)
  assert.equal(createHash('sha256').update(local).digest('hex'), entry.sha256)
  // Through a mirror: the real file is taken, another is caught by its checksum.
  for (const [body, ok] of [[local, true], [Buffer.concat([local.subarray(0, -1), Buffer.from([local.at(-1) ^ 1])]), false]]) {
    const server = await modelServer({ '/ggml-silero-v6.2.0.bin': body })
    const dir = scratch()
    await withEnv({ PERSISTENT_WHISPER_MODEL_BASE_URL: server.base }, async () => {
      const got = pw.downloadModel('silero-v6.2.0', { dir })
      if (ok) assert.equal(await got, join(dir, 'ggml-silero-v6.2.0.bin'))
      else await assert.rejects(got, withCode('ERR_CHECKSUM_MISMATCH'))
    })
    await server.close()
    assert.deepEqual(readdirSync(dir), ok ? ['ggml-silero-v6.2.0.bin'] : [])
  }
})

test('a full download reports progress, is verified, and loads in the engine', T, async () => {
  const server = await modelServer({ '/models/tiny.bin': MODEL })
  const dir = scratch()
  const seen = []
  const file = await pw.downloadModel({ url: `${server.base}/models/tiny.bin`, sha256: SHA256, size: MODEL.length }, { dir, onProgress: (p) => seen.push(p) })
  await server.close()
  assert.equal(file, join(dir, 'tiny.bin'))
  assert.ok(readFileSync(file).equals(MODEL))
  assert.deepEqual(readdirSync(dir), ['tiny.bin'], 'no .part or .lock left')
  assert.equal(seen.at(-1).percent, 100)
  assert.equal(seen.at(-1).bytes, MODEL.length)
  assert.ok(seen.every((p, i) => i === 0 || p.bytes >= seen[i - 1].bytes))
  const engine = newEngine({ modelPath: file, poolSize: 1 })
  await engine.initialize()
  const r = await engine.transcribe(JFK_WAV)
  assert.deepEqual(missingPhrases(r.text, ['ask not what your country can do for you']), [])
  await engine.shutdown()
  // A file already there is used as it is.
  assert.equal(await pw.downloadModel({ url: `${server.base}/models/tiny.bin`, sha256: SHA256 }, { dir }), file)
})

test('a download cut off mid-file resumes with a Range request', T, async () => {
  const server = await modelServer({ '/m.bin': MODEL }, { cutFirstAfter: 5_000_000 })
  const dir = scratch()
  const file = await pw.downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256 }, { dir })
  await server.close()
  assert.ok(readFileSync(file).equals(MODEL))
  assert.equal(server.requests.length, 2, JSON.stringify(server.requests))
  assert.equal(server.requests[0].range, undefined)
  const resumedFrom = Number(/^bytes=(\d+)-$/.exec(server.requests[1].range)?.[1])
  assert.ok(resumedFrom > 0 && resumedFrom <= 5_000_000, server.requests[1].range)
})

test('a checksum mismatch is ERR_CHECKSUM_MISMATCH and leaves nothing behind', T, async () => {
  const server = await modelServer({ '/m.bin': MODEL })
  const dir = scratch()
  await assert.rejects(
    pw.downloadModel({ url: `${server.base}/m.bin`, sha256: '0'.repeat(64) }, { dir }),
    (err) => withCode('ERR_CHECKSUM_MISMATCH')(err) && err.message.includes(SHA256),
  )
  await server.close()
  assert.deepEqual(readdirSync(dir), [])
})

test('a 404 is ERR_DOWNLOAD_FAILED naming the status; bad specs are ERR_INVALID_OPTIONS', T, async () => {
  const server = await modelServer({})
  const dir = scratch()
  await assert.rejects(pw.downloadModel({ url: `${server.base}/nothing.bin`, sha256: SHA256 }, { dir }), (err) => withCode('ERR_DOWNLOAD_FAILED')(err) && /HTTP 404/.test(err.message))
  await server.close()
  assert.deepEqual(readdirSync(dir).filter((f) => !f.endsWith('.part')), [])
  for (const bad of ['tiny.fr', { url: 'ftp://x/y.bin', sha256: SHA256 }, { url: `http://x/y.bin` }, { url: 'http://x/y.bin', sha1: 'abc' }, null]) {
    await assert.rejects(pw.downloadModel(bad, { dir }), withCode('ERR_INVALID_OPTIONS'), JSON.stringify(bad))
  }
})

test('an abort through the signal is ERR_ABORTED with no final file; the next download resumes', T, async () => {
  const server = await modelServer({ '/m.bin': MODEL }, { bytesPerTick: 256 * 1024 })
  const dir = scratch()
  const controller = new AbortController()
  const download = pw.downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256 }, {
    dir,
    signal: controller.signal,
    onProgress: (p) => p.bytes > 2_000_000 && controller.abort(),
  })
  await assert.rejects(download, withCode('ERR_ABORTED'))
  assert.ok(!existsSync(join(dir, 'm.bin')))
  assert.ok(!existsSync(join(dir, 'm.bin.lock')))
  const file = await pw.downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256 }, { dir })
  await server.close()
  assert.ok(readFileSync(file).equals(MODEL))
  assert.match(server.requests.at(-1).range ?? '', /^bytes=\d+-$/)
  await assert.rejects(pw.downloadModel({ url: `${server.base}/m.bin`, sha256: SHA256 }, { dir: scratch(), signal: AbortSignal.abort() }), withCode('ERR_ABORTED'))
})

test('two downloads of the same model at once give one intact file', T, async () => {
  const server = await modelServer({ '/m.bin': MODEL }, { bytesPerTick: 1024 * 1024 })
  const dir = scratch()
  const spec = { url: `${server.base}/m.bin`, sha256: SHA256 }
  const [a, b] = await Promise.all([pw.downloadModel(spec, { dir }), pw.downloadModel(spec, { dir })])
  await server.close()
  assert.equal(a, b)
  assert.ok(readFileSync(a).equals(MODEL))
  assert.equal(server.requests.length, 1, 'the second waited for the first instead of fetching again')
  assert.deepEqual(readdirSync(dir), ['m.bin'])
})

test('HTTP_PROXY is honoured, and NO_PROXY exempts a host', T, async () => {
  const server = await modelServer({ '/m.bin': MODEL })
  const proxied = []
  const proxy = createServer((req, res) => {
    proxied.push(req.url)
    const upstream = request(req.url, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers)
      r.pipe(res)
    })
    req.pipe(upstream)
  })
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  const proxyUrl = `http://127.0.0.1:${proxy.address().port}`
  const spec = { url: `${server.base}/m.bin`, sha256: SHA256 }
  await withEnv({ HTTP_PROXY: proxyUrl, NO_PROXY: '' }, () => pw.downloadModel(spec, { dir: scratch() }))
  assert.deepEqual(proxied, [`${server.base}/m.bin`])
  await withEnv({ HTTP_PROXY: proxyUrl, NO_PROXY: 'example.org,127.0.0.1' }, () => pw.downloadModel(spec, { dir: scratch() }))
  assert.equal(proxied.length, 1, 'NO_PROXY went around the proxy')
  await new Promise((resolve) => proxy.close(resolve))
  await server.close()
})

test('modelPath may name a catalogue model: found in modelDir, or ERR_MODEL_LOAD with the download command', T, async () => {
  const dir = scratch()
  const missing = newEngine({ modelPath: 'tiny.en', modelDir: dir })
  await assert.rejects(missing.initialize(), (err) => withCode('ERR_MODEL_LOAD')(err) && err.message.includes('npx persistent-whisper models download tiny.en'))
  copyFileSync(TINY_EN, join(dir, 'ggml-tiny.en.bin'))
  const engine = newEngine({ modelPath: 'tiny.en', modelDir: dir, poolSize: 1 })
  await engine.initialize()
  assert.equal((await engine.transcribe(JFK_WAV)).language, 'en')
  await engine.shutdown()
  assert.throws(() => newEngine({ modelPath: 'tiny.en', autoDownload: 'yes' }), withCode('ERR_INVALID_OPTIONS'))
})

test('autoDownload fetches through PERSISTENT_WHISPER_MODEL_BASE_URL, whose different file is caught by the checksum', T, async () => {
  const server = await modelServer({ '/ggml-tiny.en.bin': MODEL })
  const dir = scratch()
  await withEnv({ PERSISTENT_WHISPER_MODEL_BASE_URL: `${server.base}/` }, async () => {
    assert.equal(pw.listModels().find((m) => m.name === 'tiny.en').url, `${server.base}/ggml-tiny.en.bin`)
    const engine = newEngine({ modelPath: 'tiny.en', modelDir: dir, autoDownload: true })
    const progress = []
    engine.on('downloadProgress', (p) => progress.push(p.percent))
    // Called without awaiting initialize(): it waits for the download, in order.
    const init = engine.initialize()
    const status = engine.getStatus()
    await assert.rejects(init, (err) => withCode('ERR_CHECKSUM_MISMATCH')(err) && err.message.includes('c78c86eb1a8faa21b369bcd33207cc90d64ae9df'))
    assert.equal((await status).isRunning, false)
    assert.ok(progress.includes(100), `${progress}`)
    await engine.shutdown()
  })
  await server.close()
  assert.deepEqual(server.requests.map((r) => r.url), ['/ggml-tiny.en.bin'])
  assert.deepEqual(readdirSync(dir), [])
})
