// Run by __test__/gpu.test.mjs in a process of its own, so that each run
// has its own environment (which Vulkan driver, a hidden loader): an engine
// with the options given as JSON in argv[2], transcribing the clips in
// argv[3] one after another (or, with `concurrent`, all at once). Prints one JSON line: what the engine said
// about its device, the events, the texts, and each worker process's
// program as /proc shows it. With `killGpuWorker`, the first worker
// process is killed (SIGKILL, as a driver crash ends it) once it is busy
// decoding the first clip.
import { readFileSync, readlinkSync } from 'node:fs'
import { createRequire } from 'node:module'

const { PersistentWhisperEngine } = createRequire(import.meta.url)('..')
const { killGpuWorker, concurrent, ...options } = JSON.parse(process.argv[2])
// 'default': the engine's own timeout, which scales with the audio.
if (options.timeout === 'default') delete options.timeout
const clips = JSON.parse(process.argv[3] ?? '[]')

const events = []
const engine = new PersistentWhisperEngine({ logLevel: 'silent', ...options })
for (const type of ['deviceFallback', 'requestRetried', 'backendFallback', 'error']) {
  engine.on(type, (event) => events.push({ type, ...(event instanceof Error ? { code: event.code, message: event.message } : event) }))
}

/** Each live worker process's executable. */
async function programs() {
  const found = []
  for (const w of await engine.getWorkerStatuses()) {
    if (!w.pid) continue
    try {
      found.push({ pid: w.pid, exe: readlinkSync(`/proc/${w.pid}/exe`), vulkanMapped: readFileSync(`/proc/${w.pid}/maps`, 'utf8').includes('libvulkan') })
    } catch {
      // exited while we looked
    }
  }
  return found
}

/** CPU ticks a process has used. */
function ticks(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return Number(fields[11]) + Number(fields[12])
}

try {
  await engine.initialize()
  const initial = { status: (await engine.getStatus()).device, program: (await engine.getStatus()).program, processes: await programs() }
  const texts = []
  let killed = null
  // `concurrent`: every clip submitted at once.
  if (concurrent) texts.push(...(await Promise.all(clips.map((c) => engine.transcribe(c)))).map((r) => r.text))
  for (const [i, clip] of (concurrent ? [] : clips).entries()) {
    const pending = engine.transcribe(clip)
    if (killGpuWorker && i === 0) {
      // The worker process that took the clip, once it has been decoding a while.
      let pid = null
      while (!pid) {
        pid = (await engine.getWorkerStatuses()).find((w) => w.state === 'processing' && w.pid)?.pid
        if (!pid) await new Promise((r) => setTimeout(r, 25))
      }
      const before = ticks(pid)
      while (ticks(pid) < before + 50) await new Promise((r) => setTimeout(r, 25))
      killed = { pid, exe: readlinkSync(`/proc/${pid}/exe`) }
      process.kill(pid, 'SIGKILL')
    }
    texts.push((await pending).text)
  }
  const after = {
    status: (await engine.getStatus()).device,
    workers: (await engine.getWorkerStatuses()).map((w) => w.device),
    processes: await programs(),
  }
  await engine.shutdown()
  console.log(JSON.stringify({ ok: true, initial, after, texts, events, killed }))
} catch (err) {
  await engine.shutdown().catch(() => {})
  console.log(JSON.stringify({ ok: false, code: err.code, message: err.message, events }))
}
