// Compiled by types.test.mjs with `tsc --noEmit`: what a TypeScript user
// writes must type-check, and the mistakes marked @ts-expect-error must not.
import {
  downloadModel,
  ERROR_CODES,
  isPersistentWhisperError,
  listModels,
  PersistentWhisperEngine,
  toSrt,
  type ErrorCode,
  type PersistentWhisperError,
  type TranscriptionResult,
} from '../../lib'

async function main(): Promise<void> {
  const engine = new PersistentWhisperEngine({ modelPath: 'ggml-tiny.en.bin', poolSize: 2, backend: 'server' })
  await engine.initialize()
  try {
    const result: TranscriptionResult = await engine.transcribe('a.wav', { priority: 'high' })
    const first: number = result.segments[0].start
    console.log(result.text, first)
  } catch (err) {
    if (isPersistentWhisperError(err)) {
      const code: ErrorCode = err.code
      if (err.code === 'ERR_ABORTED') console.log(code)
      // @ts-expect-error: a misspelled code is not an ErrorCode
      if (err.code === 'ERR_ABORTD') console.log(code)
    }
  }
  const status = await engine.getStatus()
  console.log(status.program?.foundBy === 'package', ERROR_CODES.length)
  const e = {} as PersistentWhisperError
  console.log(e.message)
  // @ts-expect-error: the backend is one of the known names
  new PersistentWhisperEngine({ modelPath: 'm.bin', backend: 'gpu' })
  // @ts-expect-error: modelPath is required
  new PersistentWhisperEngine({ poolSize: 1 })

  // Audio from memory with live reports, the worker backend, captions.
  const worker = new PersistentWhisperEngine({ modelPath: 'base.en', autoDownload: true, backend: 'worker', processes: 1 })
  worker.on('downloadProgress', ({ model, percent }) => console.log(model, percent))
  const samples = new Float32Array(16000)
  const live = await worker.transcribe(samples, {
    onProgress: (percent: number) => console.log(percent),
    onSegment: (segment) => console.log(segment.start, segment.rawText),
  })
  const srt: string = toSrt(live)
  await worker.transcribe(new Uint8Array(8))
  // @ts-expect-error: a number is not audio
  await worker.transcribe(42)
  const path: string = await downloadModel({ url: 'https://example.org/m.bin', sha256: 'ab'.repeat(32) }, { signal: null })
  // @ts-expect-error: a download needs a checksum
  await downloadModel({ url: 'https://example.org/m.bin' })
  console.log(srt, path, listModels()[0].sha1)

  // The device: 'auto', false or an index; the status and the fallback event say where it runs.
  const onGpu = new PersistentWhisperEngine({ modelPath: 'base.en', gpu: 'auto' })
  new PersistentWhisperEngine({ modelPath: 'base.en', gpu: false })
  new PersistentWhisperEngine({ modelPath: 'base.en', gpu: 1 })
  // @ts-expect-error: true is not a device choice
  new PersistentWhisperEngine({ modelPath: 'base.en', gpu: true })
  onGpu.on('deviceFallback', ({ message, device }) => console.log(message, device?.kind === 'cpu'))
  const device = (await onGpu.getStatus()).device
  if (device?.kind === 'vulkan') console.log(device.name, device.memoryBytes, device.decodes)
  // @ts-expect-error: not a device kind
  if (device?.kind === 'opencl') console.log(device.name)

  // Live dictation: a session takes audio as it is recorded and emits text.
  const session = worker.listen({ sampleRate: 48000, partialIntervalMs: 300, signal: null, vad: { minSilenceMs: 400 } })
  session.on('speechStart', ({ utterance, startMs }) => console.log(utterance, startMs))
  session.on('speechEnd', ({ endMs }) => console.log(endMs))
  session.on('partial', ({ utterance, text }) => console.log(utterance, text))
  session.on('final', ({ text, segments, startMs, endMs }) => console.log(text, segments[0]?.start, startMs, endMs))
  session.on('error', (err) => console.log(err.code))
  const wrote: boolean = session.write(new Int16Array(480))
  session.write(new Float32Array(480))
  // @ts-expect-error: samples are a typed array, not numbers
  session.write([0.1, 0.2])
  // @ts-expect-error: not a live session event
  session.on('transcript', () => {})
  // @ts-expect-error: the sample rate is a number
  worker.listen({ sampleRate: '48k' })
  // @ts-expect-error: not a VAD setting
  worker.listen({ vad: { silenceMs: 300 } })
  const finals = await session.end()
  console.log(wrote, finals[0]?.text, finals[0]?.segments.length, session.closed)
  await worker.transcribe('a.wav', { vad: true })
}

void main
