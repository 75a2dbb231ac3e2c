// How a fleet job ends when it should not complete: cancelled (from the
// producer through BullMQ's Relay, or on its host with worker.cancelJob) its
// whisper stops within a second and it is not retried; bad input fails at
// once without retries; a timeout (of whisper, or of a download) is retried
// with the job's attempts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { clips, cpuTicks, longSpeech, waitFor, working } from './helpers.mjs'
import { startRedis } from './fleet-redis.mjs'
import { cancelTranscription, cleanups, QUICK_LOCKS, settled, startHost, startProducer, whisperOf } from './fleet-harness.mjs'

function tempDir(defer) {
  const dir = mkdtempSync(join(tmpdir(), 'pw-fleet-'))
  defer(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Redis, one host (with these worker options) and a producer, all ended after the test. */
async function fleet(defer, queue, worker = QUICK_LOCKS) {
  const redis = await startRedis()
  defer(() => redis.remove())
  const host = await startHost(redis, { queue, name: 'host-a', worker })
  defer(() => host.kill())
  const producer = await startProducer(redis, queue)
  defer(() => producer.close())
  return { redis, host, producer }
}

/** Asserts that whisper does no work over half a second (a decode on one thread uses about 50 ticks in that time). */
async function idle(pid) {
  const before = cpuTicks(pid)
  await new Promise((resolve) => setTimeout(resolve, 500)) // a measurement window, not a wait for an event
  const used = cpuTicks(pid) - before
  assert.ok(used <= 3, `whisper used ${used} clock ticks after the cancel`)
}

test('a cancelled job stops its whisper within a second and is not retried: from the producer, and on its host', { timeout: 300_000 }, async (t) => {
  const defer = cleanups(t)
  const { host, producer } = await fleet(defer, 'cancel')
  const long = join(tempDir(defer), 'long.wav')
  writeFileSync(long, longSpeech(1))
  const whisper = await whisperOf(host)

  for (const [how, cancel] of [
    ['cancelTranscription() from the producer', async (jobId) => assert.equal(await cancelTranscription(producer, jobId, 'the user left'), 'signalled')],
    ['worker.cancelJob() on the host', async (jobId) => host.cancel(jobId, 'the user left')],
  ]) {
    const failuresBefore = host.messages.filter((m) => m.type === 'requestFailed').length
    const job = await producer.queue.add('transcribe', { audio: { path: long } }, { attempts: 3 })
    await host.message('active', (m) => m.jobId === job.id)
    await working(whisper)
    const cancelledAt = Date.now()
    await cancel(job.id)

    const stopped = await waitFor(`${how}: the engine request to end`, () => host.messages.filter((m) => m.type === 'requestFailed')[failuresBefore])
    assert.equal(stopped.code, 'ERR_ABORTED', how)
    assert.ok(stopped.at - cancelledAt < 1000, `${how}: whisper stopped ${stopped.at - cancelledAt} ms after the cancel`)
    await idle(whisper)
    const done = await settled(producer.queue, job.id)
    assert.equal(done.state, 'failed', how)
    assert.match(done.failedReason, /^ERR_ABORTED: the job was cancelled: the user left/, how)
    assert.equal(done.attemptsMade, 1, `${how}: not retried, though attempts were 3`)
  }

  // A job still waiting (the host busy with another) is removed instead.
  const busy = await producer.queue.add('transcribe', { audio: { path: long } })
  await host.message('active', (m) => m.jobId === busy.id)
  const waiting = await producer.queue.add('transcribe', { audio: { path: clips[0].path } })
  assert.equal(await cancelTranscription(producer, waiting.id), 'removed')
  assert.equal(await producer.queue.getJob(waiting.id), undefined)
  assert.equal(await cancelTranscription(producer, 'no-such-job'), 'missing')
  assert.equal(await cancelTranscription(producer, busy.id), 'signalled')
  assert.equal((await settled(producer.queue, busy.id)).state, 'failed')
})

test('bad input fails the job at once, without retries, with its code first in failedReason', { timeout: 300_000 }, async (t) => {
  const defer = cleanups(t)
  const dir = tempDir(defer)
  const text = join(dir, 'notes.wav')
  writeFileSync(text, 'this is a text file, not audio\n'.repeat(100))
  const garbage = randomBytes(20_000)
  const server = createServer((req, res) => {
    if (req.url === '/big.wav') return res.writeHead(200).end(Buffer.alloc(300_000)) // over this host's maxUrlBytes
    if (req.url === '/endless.wav') {
      // No Content-Length: the host must count what arrives.
      res.writeHead(200)
      const timer = setInterval(() => res.write(Buffer.alloc(64 * 1024)), 5)
      res.on('close', () => clearInterval(timer))
      return
    }
    res.writeHead(404).end()
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  defer(() => new Promise((resolve) => server.close(resolve)))
  const base = `http://127.0.0.1:${server.address().port}`
  const { producer } = await fleet(defer, 'bad-input', { ...QUICK_LOCKS, maxUrlBytes: 200_000, maxBase64Bytes: 100_000 })

  const cases = [
    ['a text file named .wav', { audio: { path: text } }, 'ERR_AUDIO_UNREADABLE'],
    ['a missing file', { audio: { path: join(dir, 'missing.wav') } }, 'ERR_AUDIO_NOT_FOUND'],
    ['random bytes as base64', { audio: { base64: garbage.toString('base64') } }, 'ERR_AUDIO_UNREADABLE'],
    ['a URL that answers 404', { audio: { url: `${base}/gone.wav` } }, 'ERR_AUDIO_NOT_FOUND'],
    ['a URL over maxUrlBytes (Content-Length)', { audio: { url: `${base}/big.wav` } }, 'ERR_AUDIO_UNREADABLE'],
    ['a URL over maxUrlBytes (streamed)', { audio: { url: `${base}/endless.wav` } }, 'ERR_AUDIO_UNREADABLE'],
    ['base64 over maxBase64Bytes', { audio: { base64: randomBytes(150_000).toString('base64') } }, 'ERR_INVALID_OPTIONS'],
    ['base64 with characters outside its alphabet', { audio: { base64: 'UklGR!!!' } }, 'ERR_INVALID_OPTIONS'],
    ['a relative path', { audio: { path: 'clip.wav' } }, 'ERR_INVALID_OPTIONS'],
    ['a file: URL', { audio: { url: `file://${clips[0].path}` } }, 'ERR_INVALID_OPTIONS'],
    ['two kinds of audio', { audio: { path: clips[0].path, url: `${base}/a.wav` } }, 'ERR_INVALID_OPTIONS'],
    ['no audio', { options: {} }, 'ERR_INVALID_OPTIONS'],
    ['data that is not an object', 'just a string', 'ERR_INVALID_OPTIONS'],
    ['a transcribe() option of the wrong type', { audio: { path: clips[0].path }, options: { language: 5 } }, 'ERR_INVALID_OPTIONS'],
  ]
  const jobs = await producer.queue.addBulk(cases.map(([, data]) => ({ name: 'transcribe', data, opts: { attempts: 3, backoff: { type: 'fixed', delay: 10 } } })))
  const done = await Promise.all(jobs.map((job) => settled(producer.queue, job.id)))
  done.forEach((job, i) => {
    const [what, , code] = cases[i]
    assert.equal(job.state, 'failed', what)
    assert.ok(job.failedReason.startsWith(`${code}: `), `${what}: ${job.failedReason}`)
    assert.equal(job.attemptsMade, 1, `${what}: not retried`)
  })
  // A query string (a signed URL's token) stays out of the reason.
  const signed = await producer.queue.add('transcribe', { audio: { url: `${base}/gone.wav?token=secret123` } })
  assert.doesNotMatch((await settled(producer.queue, signed.id)).failedReason, /secret123/)
})

test('a timeout is retried with the job\'s attempts and backoff, then fails with ERR_TIMEOUT; so is a download that times out', { timeout: 300_000 }, async (t) => {
  const defer = cleanups(t)
  // A server that never answers.
  const silent = createServer(() => {})
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve))
  defer(() => {
    silent.closeAllConnections()
    return new Promise((resolve) => silent.close(resolve))
  })
  const { host, producer } = await fleet(defer, 'timeout', { ...QUICK_LOCKS, urlTimeout: 300 })
  const job = await producer.queue.add('transcribe', { audio: { path: clips[0].path }, options: { timeout: 1 } }, { attempts: 3, backoff: { type: 'fixed', delay: 50 } })
  const done = await settled(producer.queue, job.id)
  assert.equal(done.state, 'failed')
  assert.match(done.failedReason, /^ERR_TIMEOUT: /)
  assert.equal(done.attemptsMade, 3, 'every attempt was made')
  assert.equal(host.messages.filter((m) => m.type === 'requestFailed' && m.code === 'ERR_TIMEOUT').length, 3)

  const stuck = await producer.queue.add('transcribe', { audio: { url: `http://127.0.0.1:${silent.address().port}/a.wav` } }, { attempts: 2 })
  const gaveUp = await settled(producer.queue, stuck.id)
  assert.equal(gaveUp.state, 'failed')
  assert.match(gaveUp.failedReason, /^ERR_DOWNLOAD_FAILED: no audio from .* within urlTimeout \(300 ms\)/)
  assert.equal(gaveUp.attemptsMade, 2, 'a download that failed is retried')

  // The same clip without the tiny timeout: the host is fine.
  const ok = await producer.queue.add('transcribe', { audio: { base64: readFileSync(clips[0].path).toString('base64') } })
  assert.equal((await settled(producer.queue, ok.id)).state, 'completed')
})
