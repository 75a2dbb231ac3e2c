// A fleet loses nothing when a part of it fails: a host killed with kill -9
// mid-job (its job is finished by another host), Redis restarted mid-run
// (the hosts reconnect and finish), and a host that loses a job's lock (its
// whisper stops; the job is finished once).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { clips, isGone, longSpeech, missingPhrases, newEngine, waitFor, working } from './helpers.mjs'
import { startRedis } from './fleet-redis.mjs'
import { cleanups, settled, startHost, startProducer, whisperOf } from './fleet-harness.mjs'

const Redis = createRequire(import.meta.url)('ioredis')

/** A WAV of every clip's speech once (about 40 s), long enough to be caught mid-job. */
function longFile(defer) {
  const dir = mkdtempSync(join(tmpdir(), 'pw-fleet-'))
  defer(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'long speech.wav')
  writeFileSync(path, longSpeech(1))
  return path
}

/**
 * The right text for the long file: what an engine with the hosts' settings
 * gives for it here, directly (in a long file a word can come out otherwise
 * than in its clip alone, so the clips' key phrases are not the measure).
 */
let direct = null // every long file of these tests holds the same bytes (longSpeech(1))
async function rightText(path) {
  direct ??= (async () => {
    const engine = newEngine({ backend: 'worker', poolSize: 1, threads: 1 })
    await engine.initialize()
    try {
      return (await engine.transcribe(path)).text
    } finally {
      await engine.shutdown()
    }
  })()
  const text = await direct
  assert.deepEqual(missingPhrases(text, ['ask not what your country can do for you', 'brown fox', 'fresh air']), [], text)
  return text
}

/** The host that reported this job active (first), once one has. */
async function runner(hosts, jobId) {
  return waitFor(`a host to take job ${jobId}`, () => hosts.find((h) => h.messages.some((m) => m.type === 'active' && m.jobId === jobId)))
}

test('a host killed with kill -9 mid-job: another host finishes the job, and nothing is left of the dead one', { timeout: 300_000 }, async (t) => {
  const defer = cleanups(t)
  const redis = await startRedis()
  defer(() => redis.remove())
  const queue = 'failover'
  const hosts = await Promise.all(['host-a', 'host-b'].map((name) => startHost(redis, { queue, name })))
  defer(() => Promise.all(hosts.map((h) => h.kill())))
  const producer = await startProducer(redis, queue)
  defer(() => producer.close())
  const stalled = []
  producer.events.on('stalled', ({ jobId }) => stalled.push(jobId))

  const long = longFile(defer)
  const job = await producer.queue.add('transcribe', { audio: { path: long } }, { attempts: 1 })
  const victim = await runner(hosts, job.id)
  const survivor = hosts.find((h) => h !== victim)
  const whisper = await whisperOf(victim)
  await working(whisper)
  const { signal } = await victim.kill()
  assert.equal(signal, 'SIGKILL')

  const done = await settled(producer.queue, job.id, 240_000)
  assert.equal(done.state, 'completed', done.failedReason)
  assert.equal(done.returnvalue.host.worker, survivor.name)
  assert.equal(done.returnvalue.text, await rightText(long))
  assert.deepEqual(survivor.completed(), [job.id])
  assert.deepEqual(stalled, [job.id], 'BullMQ saw the job stall once')
  // The dead host's whisper died with it (it exits when its stdin closes).
  await waitFor('the dead host\'s whisper to exit', () => isGone(whisper))
})

test('Redis restarted mid-run: the hosts reconnect and finish every job, each once', { timeout: 300_000 }, async (t) => {
  const defer = cleanups(t)
  const redis = await startRedis()
  defer(() => redis.remove())
  const queue = 'restart'
  const hosts = await Promise.all(['host-a', 'host-b'].map((name) => startHost(redis, { queue, name })))
  defer(() => Promise.all(hosts.map((h) => h.kill())))
  const producer = await startProducer(redis, queue)
  defer(() => producer.close())

  const batch = [...clips, ...clips]
  const jobs = await producer.queue.addBulk(batch.map((clip) => ({ name: 'transcribe', data: { audio: { path: clip.path } }, opts: { attempts: 3 } })))
  // Mid-run: some done, some running, some waiting.
  await waitFor('two jobs done', () => hosts.flatMap((h) => h.completed()).length >= 2, 120_000)
  const pidBefore = redis.pid
  await redis.restart()
  assert.notEqual(redis.pid, pidBefore, 'a new redis-server process')

  const done = await Promise.all(jobs.map((job) => settled(producer.queue, job.id, 240_000)))
  done.forEach((job, i) => {
    assert.equal(job.state, 'completed', `${batch[i].file}: ${job.failedReason}`)
    assert.deepEqual(missingPhrases(job.returnvalue.text, batch[i].keyPhrases), [], `${batch[i].file}: ${job.returnvalue.text}`)
  })
  const completions = hosts.flatMap((h) => h.completed())
  assert.deepEqual([...completions].sort(), jobs.map((j) => j.id).sort(), 'every job completed by exactly one host')
  assert.ok(hosts.every((h) => h.child.exitCode === null), 'the hosts outlived the restart')
})

test('a host that loses a job\'s lock stops its whisper at once; the job is completed once', { timeout: 300_000 }, async (t) => {
  const defer = cleanups(t)
  const redis = await startRedis()
  defer(() => redis.remove())
  const queue = 'lock-lost'
  const hosts = await Promise.all(['host-a', 'host-b'].map((name) => startHost(redis, { queue, name })))
  defer(() => Promise.all(hosts.map((h) => h.kill())))
  const producer = await startProducer(redis, queue)
  defer(() => producer.close())

  const long = longFile(defer)
  const job = await producer.queue.add('transcribe', { audio: { path: long } }, { attempts: 1 })
  const first = await runner(hosts, job.id)
  await working(await whisperOf(first))
  // As if Redis had lost the lock, or it had expired while the host was frozen.
  const client = new Redis(redis.connection)
  defer(() => client.quit())
  assert.equal(await client.del(`bull:${queue}:${job.id}:lock`), 1)

  const lost = await first.message('lockLost', (m) => m.jobIds.includes(job.id))
  const aborted = await first.message('requestFailed', (m) => m.code === 'ERR_ABORTED')
  assert.ok(aborted.at - lost.at < 1000, `whisper stopped ${aborted.at - lost.at} ms after the lock was lost`)

  const done = await settled(producer.queue, job.id, 240_000)
  assert.equal(done.state, 'completed', done.failedReason)
  assert.equal(done.returnvalue.text, await rightText(long))
  assert.deepEqual(hosts.flatMap((h) => h.completed()), [job.id], 'completed once')
})
