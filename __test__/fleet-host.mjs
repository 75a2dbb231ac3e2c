// One worker host of the fleet tests and benchmark, in a process of its own
// (so that `kill -9` of a host is real): a transcription worker from
// persistent-whisper/bullmq on a real engine. Its settings come in the
// FLEET_HOST environment variable (JSON: the Redis password stays off the
// command line); it reports to its parent over IPC and takes commands from it.
//   to the parent: ready, active, completed, failed, lockLost, error, closed,
//                  requestFailed (the engine's, with its code)
//   from the parent: { type: 'cancel', jobId, reason }, { type: 'close', force }
import { createTranscriptionWorker } from 'persistent-whisper/bullmq'
import { TINY_EN } from '../scripts/paths.mjs'

const config = JSON.parse(process.env.FLEET_HOST)
const send = (message) => process.connected && process.send(message)

const worker = await createTranscriptionWorker(config.queue, {
  connection: config.connection,
  engine: { modelPath: TINY_EN, backend: 'worker', poolSize: 1, threads: 1, logLevel: 'silent', ...config.engine },
  name: config.name,
  ...config.worker,
})
worker.on('active', (job) => send({ type: 'active', jobId: job.id }))
worker.on('completed', (job, result) => send({ type: 'completed', jobId: job.id, text: result.text }))
worker.on('failed', (job, err) => send({ type: 'failed', jobId: job?.id, reason: err.message }))
worker.on('lockRenewalFailed', (jobIds) => send({ type: 'lockLost', jobIds }))
worker.engine.on('requestFailed', ({ code }) => send({ type: 'requestFailed', code }))
// Connection errors while Redis restarts are expected; the parent may log them.
worker.on('error', (err) => send({ type: 'error', message: err.message }))

// The parent (a test) died: a host must not outlive it.
process.on('disconnect', () => closing || process.exit(1))
let closing = false

process.on('message', async (message) => {
  if (message.type === 'cancel') send({ type: 'cancelled', jobId: message.jobId, found: worker.cancelJob(message.jobId, message.reason) })
  if (message.type === 'close') {
    closing = true
    await worker.close(message.force === true)
    send({ type: 'closed', engineRunning: (await worker.engine.getStatus()).isRunning })
    process.disconnect()
  }
})

await worker.waitUntilReady()
send({ type: 'ready', pid: process.pid, name: config.name })
