// The engine on Windows (node.exe under Wine), on every backend: real
// whisper programs built for Windows, the real model, real speech.
import assert from 'node:assert/strict'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { join } from 'node:path'
import { BACKENDS, PROGRAM, SLOW, clips, isRunning, longSpeech, missingPhrases, newEngine, pw, samplesOf, scratch, waitFor, wideCopy, withCode } from './common.mjs'

/** The pid of the whisper process serving the engine's only worker, once it works on a request. */
const busyPid = (engine) =>
  waitFor('a request to run', async () => {
    const [worker] = await engine.getWorkerStatuses()
    return worker?.state === 'processing' && worker.pid
  })

for (const backend of BACKENDS) {
  describe(`${backend} backend`, SLOW, () => {
    let engine
    let dir
    let long
    before(async () => {
      dir = scratch(backend)
      long = join(dir, 'long speech.wav')
      writeFileSync(long, longSpeech(3))
      engine = newEngine({ backend, poolSize: 1 })
      await engine.initialize()
    })
    after(async () => {
      await engine?.shutdown().catch(() => {})
      rmSync(dir, { recursive: true, force: true })
    })

    test('runs the Windows program of this backend', async () => {
      const { program, backend: running } = await engine.getStatus()
      assert.equal(running, backend)
      assert.match(program.path, new RegExp(`\\\\${PROGRAM[backend]}\\.exe$`), program.path)
    })

    test('transcribes a file whose path has a drive letter, spaces and letters outside the ANSI code page', async () => {
      const clip = clips[0]
      const path = wideCopy(clip, dir)
      assert.match(path, /^C:\\pw tests\\.* журнал 日本語 ü/)
      const result = await engine.transcribe(path)
      assert.deepEqual(missingPhrases(result.text, clip.keyPhrases), [], result.text)
    })

    test('transcribes audio from memory: 16 kHz samples and a WAV file\'s bytes', async () => {
      const [, samplesClip, bytesClip] = clips
      const fromSamples = await engine.transcribe(samplesOf(samplesClip.path))
      assert.deepEqual(missingPhrases(fromSamples.text, samplesClip.keyPhrases), [], fromSamples.text)
      const fromBytes = await engine.transcribe(readFileSync(bytesClip.path))
      assert.deepEqual(missingPhrases(fromBytes.text, bytesClip.keyPhrases), [], fromBytes.text)
    })

    test('an AbortSignal ends a running request with ERR_ABORTED, and the next one is served', async () => {
      const abort = new AbortController()
      const running = engine.transcribe(long, { signal: abort.signal })
      const pid = await busyPid(engine)
      abort.abort()
      await assert.rejects(running, withCode('ERR_ABORTED'))
      if (backend === 'cli') await waitFor(`whisper-cli ${pid} to be ended`, () => !isRunning(pid))
      else assert.ok(isRunning(pid), `${PROGRAM[backend]} keeps serving`)
      const clip = clips[3]
      const next = await engine.transcribe(clip.path)
      assert.deepEqual(missingPhrases(next.text, clip.keyPhrases), [], next.text)
    })

    test('a request that runs past its timeout fails with ERR_TIMEOUT', async () => {
      await assert.rejects(engine.transcribe(long, { timeout: 1500 }), withCode('ERR_TIMEOUT'))
      const { poolStats } = await engine.getStatus()
      assert.ok(poolStats.totalRequestsFailed >= 1)
    })

    test('shutdown() ends the request in flight with ERR_SHUTDOWN and leaves no whisper process', async () => {
      const running = engine.transcribe(long)
      const outcome = running.then(() => 'resolved', (err) => err)
      const pid = await busyPid(engine)
      const pids = (await engine.getWorkerStatuses()).map((w) => w.pid).filter(Boolean)
      assert.ok(pids.includes(pid))
      await engine.shutdown()
      assert.ok(withCode('ERR_SHUTDOWN')(await outcome))
      for (const p of pids) assert.equal(isRunning(p), false, `${PROGRAM[backend]} ${p} is gone when shutdown() resolves`)
    })
  })
}

test('the CPU variant: the best Windows build this CPU runs', async () => {
  const expected = process.env.PW_EXPECT_VARIANT
  assert.ok(expected, 'the Linux side passes the variant /proc/cpuinfo calls for')
  const located = await pw.locateWhisper('whisper-cli')
  assert.equal(located.variant, expected)
  assert.equal(located.foundBy, 'checkout')
  assert.match(located.path, new RegExp(`\\\\win32-x64-gnu\\\\bin\\\\${expected}\\\\whisper-cli\\.exe$`))
})
