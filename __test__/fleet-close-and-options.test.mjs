// A host's end: a graceful close() finishes the jobs it runs, then shuts its
// engine down; close(true) leaves them to other hosts. The options: every
// bad one is refused with ERR_INVALID_OPTIONS, and a refusal leaves no
// engine process behind. And bullmq stays an optional dependency.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { childProcesses, clips, isGone, longSpeech, missingPhrases, ROOT, TINY_EN, withCode, working } from './helpers.mjs'
import { startRedis } from './fleet-redis.mjs'
import { cleanups, settled, startHost, startProducer, whisperOf } from './fleet-harness.mjs'

const { createTranscriptionWorker, LOCK_DEFAULTS } = createRequire(import.meta.url)('persistent-whisper/bullmq')

test('close() lets the running job finish, then shuts the engine down; the host exits with nothing left', { timeout: 300_000 }, async (t) => {
  const defer = cleanups(t)
  const redis = await startRedis()
  defer(() => redis.remove())
  const host = await startHost(redis, { queue: 'close', name: 'host-a' })
  defer(() => host.kill())
  const producer = await startProducer(redis, 'close')
  defer(() => producer.close())

  const clip = clips.find((c) => c.file === 'jfk.wav')
  const job = await producer.queue.add('transcribe', { audio: { path: clip.path } })
  await host.message('active', (m) => m.jobId === job.id)
  const whisper = await whisperOf(host)
  await working(whisper)
  const { code } = await host.close()

  assert.equal(code, 0)
  const done = await settled(producer.queue, job.id)
  assert.equal(done.state, 'completed', done.failedReason)
  assert.deepEqual(missingPhrases(done.returnvalue.text, clip.keyPhrases), [])
  const order = host.messages.map((m) => m.type).filter((type) => type === 'completed' || type === 'closed')
  assert.deepEqual(order, ['completed', 'closed'], 'the job completed before close() resolved')
  assert.equal((await host.message('closed')).engineRunning, false, 'close() shut the engine down')
  assert.ok(isGone(whisper))
})

test('close(true) leaves the running job to another host, which finishes it', { timeout: 300_000 }, async (t) => {
  const defer = cleanups(t)
  const dir = mkdtempSync(join(tmpdir(), 'pw-fleet-'))
  defer(() => rmSync(dir, { recursive: true, force: true }))
  const long = join(dir, 'long.wav')
  writeFileSync(long, longSpeech(1))
  const redis = await startRedis()
  defer(() => redis.remove())
  const first = await startHost(redis, { queue: 'force', name: 'host-a' })
  defer(() => first.kill())
  const producer = await startProducer(redis, 'force')
  defer(() => producer.close())

  const job = await producer.queue.add('transcribe', { audio: { path: long } }, { attempts: 1 })
  await first.message('active', (m) => m.jobId === job.id)
  await working(await whisperOf(first))
  assert.equal((await first.close(true)).code, 0)
  assert.equal(await (await producer.queue.getJob(job.id)).getState(), 'active', 'not failed: its lock will expire')

  const second = await startHost(redis, { queue: 'force', name: 'host-b' })
  defer(() => second.kill())
  const done = await settled(producer.queue, job.id, 240_000)
  assert.equal(done.state, 'completed', done.failedReason)
  assert.equal(done.returnvalue.host.worker, 'host-b')
})

test('bad options reject with ERR_INVALID_OPTIONS (never a synchronous throw), and leave no engine process', { timeout: 120_000 }, async () => {
  const connection = { host: '127.0.0.1', port: 1 } // never reached: every case is refused first
  const engine = { modelPath: TINY_EN, backend: 'worker', poolSize: 1, logLevel: 'silent' }
  const cases = [
    ['no queue name', [undefined, { connection, engine }]],
    ['a queue name with `:`', ['a:b', { connection, engine }]],
    ['no options', ['q']],
    ['no connection', ['q', { engine }]],
    ['no engine', ['q', { connection }]],
    ['an engine that is a string', ['q', { connection, engine: 'tiny.en' }]],
    ['engine options the engine refuses', ['q', { connection, engine: { ...engine, poolSize: 0 } }]],
    ['concurrency 0', ['q', { connection, engine, concurrency: 0 }]],
    ['maxUrlBytes -1', ['q', { connection, engine, maxUrlBytes: -1 }]],
    ['maxBase64Bytes 1.5', ['q', { connection, engine, maxBase64Bytes: 1.5 }]],
    ['urlTimeout as a string', ['q', { connection, engine, urlTimeout: '60s' }]],
    ['allowUrl that is no function', ['q', { connection, engine, allowUrl: 'example.com' }]],
    ['pathRoot that is no string', ['q', { connection, engine, pathRoot: 42 }]],
    ['remoteCancel that is no boolean', ['q', { connection, engine, remoteCancel: 'yes' }]],
    ['stalledInterval 0', ['q', { connection, engine, stalledInterval: 0 }]],
    ['lockDuration as a string', ['q', { connection, engine, lockDuration: '30s' }]],
    ['maxStalledCount -1', ['q', { connection, engine, maxStalledCount: -1 }]],
  ]
  for (const [what, args] of cases) {
    let pending
    assert.doesNotThrow(() => (pending = createTranscriptionWorker(...args)), what)
    await assert.rejects(pending, withCode('ERR_INVALID_OPTIONS'), what)
  }
  await assert.rejects(createTranscriptionWorker('q', { connection, engine: { ...engine, modelPath: '/nowhere/ggml-none.bin' } }), withCode('ERR_MODEL_LOAD'))
  assert.deepEqual(childProcesses('persistent-whis'), [], 'no engine process left')
  assert.deepEqual(LOCK_DEFAULTS, { lockDuration: 30_000, stalledInterval: 15_000, maxStalledCount: 2 })
})

test('bullmq stays optional: the engine loads without it, and the fleet module says how to install it', () => {
  // A preload that hides bullmq, as on a desktop app's machine.
  const hide = "const M = require('node:module'); const r = M._resolveFilename; M._resolveFilename = function (id, ...rest) { if (id === 'bullmq') { const e = new Error(\"Cannot find module 'bullmq'\"); e.code = 'MODULE_NOT_FOUND'; throw e } return r.call(this, id, ...rest) }"
  const script = `${hide}
    const pw = require('persistent-whisper')
    if (typeof pw.PersistentWhisperEngine !== 'function') throw new Error('no engine')
    if (Object.keys(require.cache).some((f) => f.includes('/node_modules/bullmq/'))) throw new Error('bullmq loaded by the main entry')
    try { require('persistent-whisper/bullmq'); console.log('loaded') } catch (err) { console.log(err.code, err.message.split('\\n')[0]) }`
  const r = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'MODULE_NOT_FOUND persistent-whisper/bullmq needs the bullmq package (6.x), an optional peer dependency: npm install bullmq ioredis')
})
