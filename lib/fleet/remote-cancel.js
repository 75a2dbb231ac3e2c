'use strict'
// Cancelling a job from any process, not only the one that runs it.
// worker.cancelJob() aborts a job only in its own process; BullMQ's Relay
// (pub/sub through the same Redis) carries the request to every host, as
// BullMQ's guide "Cancelling jobs on other workers" does it: each worker
// subscribes to `jobs.<queue>.cancel`, a producer publishes { jobId, reason }.

/**
 * The Relay topic on which a queue's cancellations travel. Topic segments
 * allow letters, digits, `_`, `-`, `:` and `%`: any other character of the
 * queue name is percent-encoded (a queue named `uploads` gives `jobs.uploads.cancel`).
 */
function cancelTopic(queueName) {
  const segment = Array.from(Buffer.from(String(queueName), 'utf8'))
    .map((b) => (/[A-Za-z0-9_-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`))
    .join('')
  return `jobs.${segment}.cancel`
}

/**
 * Subscribes `worker` to its queue's cancellations on a Relay of its own:
 * { ready } resolves once the subscription is in place; close() ends it.
 */
function listenForCancels(bullmq, worker, queueName, { connection, prefix, name }) {
  const relay = new bullmq.Relay({ connection, ...(prefix ? { prefix } : {}), ...(name ? { name } : {}) })
  // A relay error (Redis away for a while) must not crash the host: the worker reports it.
  relay.on('error', (err) => worker.emit('error', err))
  const ready = relay.subscribe(cancelTopic(queueName), (message) => {
    const { jobId, reason } = message?.data ?? {}
    if (typeof jobId !== 'string' && typeof jobId !== 'number') return
    worker.cancelJob(String(jobId), typeof reason === 'string' && reason ? reason : 'cancelled')
  })
  return { ready, close: () => relay.close() }
}

const WAITING = ['waiting', 'delayed', 'prioritized', 'waiting-children']

/**
 * Cancels a transcription job from any process: a job still waiting is
 * removed; a running one is aborted on the host that runs it (it fails with
 * ERR_ABORTED, without retries). Resolves with what it did: 'removed',
 * 'signalled', 'finished' (it had completed or failed already) or 'missing'.
 */
async function cancelTranscription({ queue, relay }, jobId, reason = 'cancelled') {
  const job = await queue.getJob(String(jobId))
  if (!job) return 'missing'
  const state = await job.getState()
  if (state === 'completed' || state === 'failed') return 'finished'
  if (WAITING.includes(state)) {
    try {
      await job.remove()
      return 'removed'
    } catch {
      // A host took it meanwhile (a locked job cannot be removed): abort it there.
    }
  }
  await relay.publish(cancelTopic(queue.name), { jobId: String(jobId), reason })
  return 'signalled'
}

module.exports = { cancelTopic, listenForCancels, cancelTranscription }
