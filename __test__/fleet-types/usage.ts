// Compiled by fleet-types.test.mjs with `tsc --noEmit`: a producer and a
// worker host written against persistent-whisper/bullmq (resolved through the
// package's exports) must type-check, and the mistakes marked as expected
// errors must not.
import { Queue, QueueEvents, Relay } from 'bullmq'
import {
  cancelTranscription,
  createTranscriptionWorker,
  type TranscriptionJobData,
  type TranscriptionJobResult,
} from 'persistent-whisper/bullmq'

const connection = { host: '127.0.0.1', port: 6379 }

async function host(): Promise<void> {
  const worker = await createTranscriptionWorker('transcribe', {
    connection,
    engine: { modelPath: 'base.en', backend: 'worker', poolSize: 2 },
    maxUrlBytes: 50 * 1024 * 1024,
    allowUrl: (url) => url.hostname === 'uploads.example.com',
    lockDuration: 60_000,
  })
  worker.on('completed', (job, result) => {
    const text: string = result.text
    const pid: number = result.host.pid
    const data: TranscriptionJobData = job.data
    console.log(text, pid, data.audio)
  })
  process.on('SIGTERM', () => void worker.close())
  // @ts-expect-error the engine is required
  await createTranscriptionWorker('transcribe', { connection })
  // @ts-expect-error concurrency is a number
  await createTranscriptionWorker('transcribe', { connection, engine: { modelPath: 'x' }, concurrency: 'all' })
}

async function producer(): Promise<void> {
  const queue = new Queue<TranscriptionJobData, TranscriptionJobResult>('transcribe', { connection })
  const events = new QueueEvents('transcribe', { connection })
  const job = await queue.add('transcribe', { audio: { path: '/shared/a.wav' }, options: { language: 'en', priority: 'high' } }, { attempts: 3 })
  const result: TranscriptionJobResult = await job.waitUntilFinished(events)
  console.log(result.segments[0].start, result.host.hostname)
  await queue.add('transcribe', { audio: { url: 'https://uploads.example.com/a.mp3' } })
  // @ts-expect-error one kind of audio per job
  await queue.add('transcribe', { audio: { path: '/a.wav', url: 'https://x/a.wav' } })
  // @ts-expect-error callbacks cannot travel in a job
  await queue.add('transcribe', { audio: { base64: 'UklGRg==' }, options: { onProgress: () => {} } })
  const relay = new Relay({ connection })
  const outcome: 'removed' | 'signalled' | 'finished' | 'missing' = await cancelTranscription({ queue, relay }, job.id!, 'user cancelled')
  console.log(outcome)
}

void host
void producer
