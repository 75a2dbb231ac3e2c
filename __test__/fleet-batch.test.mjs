// A transcription fleet: worker hosts (separate processes, real engines) on
// a real Redis, fed by a producer with BullMQ's own Queue. A batch is spread
// over the hosts, and every job is transcribed once, right, whatever form
// its audio takes (a shared path, a URL, base64).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { clips, missingPhrases } from './helpers.mjs'
import { startRedis } from './fleet-redis.mjs'
import { cleanups, settled, startHost, startProducer } from './fleet-harness.mjs'

/** A local HTTP server for { url } jobs: the clips by file name. */
async function clipServer() {
  const server = createServer((req, res) => {
    const clip = clips.find((c) => `/${c.file}` === req.url)
    if (!clip) return res.writeHead(404).end()
    res.writeHead(200, { 'content-type': 'audio/wav' }).end(readFileSync(clip.path))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { base: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((resolve) => server.close(resolve)) }
}

test('a batch over three hosts: every job completed once, by one host, with the right text', { timeout: 300_000 }, async (t) => {
  const defer = cleanups(t)
  const redis = await startRedis()
  defer(() => redis.remove())
  const http = await clipServer()
  defer(() => http.close())
  const queue = 'batch'
  const hosts = await Promise.all(['host-a', 'host-b', 'host-c'].map((name) => startHost(redis, { queue, name })))
  defer(() => Promise.all(hosts.map((h) => h.kill())))
  const producer = await startProducer(redis, queue)
  defer(() => producer.close())

  // Each clip twice, its audio as a path, a URL or base64 in turn.
  const forms = [(c) => ({ path: c.path }), (c) => ({ url: `${http.base}/${c.file}` }), (c) => ({ base64: readFileSync(c.path).toString('base64') })]
  const batch = [...clips, ...clips].map((clip, i) => ({ clip, audio: forms[i % forms.length](clip) }))
  const jobs = await producer.queue.addBulk(batch.map(({ audio }) => ({ name: 'transcribe', data: { audio, options: { language: 'en' } }, opts: { attempts: 3 } })))

  const done = await Promise.all(jobs.map((job) => settled(producer.queue, job.id)))
  done.forEach((job, i) => {
    const { clip, audio } = batch[i]
    const what = `${basename(clip.file)} as ${Object.keys(audio)[0]}`
    assert.equal(job.state, 'completed', `${what}: ${job.failedReason}`)
    assert.equal(job.attemptsMade, 1, `${what}: one attempt`)
    assert.deepEqual(missingPhrases(job.returnvalue.text, clip.keyPhrases), [], `${what}: "${job.returnvalue.text}"`)
    assert.ok(job.returnvalue.segments.length > 0, what)
    assert.equal(job.returnvalue.language, 'en')
    assert.equal(job.progress, 100, `${what}: progress reached 100`)
  })

  // Once: each job completed by exactly one host, and the one its result names.
  const byHost = Object.fromEntries(hosts.map((h) => [h.name, h.completed()]))
  for (const job of done) {
    const owners = hosts.filter((h) => byHost[h.name].includes(job.id)).map((h) => h.name)
    assert.deepEqual(owners, [job.returnvalue.host.worker], `job ${job.id} completed by ${owners}`)
    assert.equal(job.returnvalue.host.pid, hosts.find((h) => h.name === owners[0]).child.pid)
  }
  assert.equal(Object.values(byHost).flat().length, jobs.length, 'no job completed twice')
  for (const host of hosts) assert.ok(byHost[host.name].length > 0, `${host.name} took part: ${JSON.stringify(byHost)}`)
})
