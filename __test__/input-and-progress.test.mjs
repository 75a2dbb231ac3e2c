// Audio from memory and the progress / segment reports, on every backend,
// with the real whisper programs and tiny.en.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { BACKENDS, clips, newEngine, samplesOf, withCode } from './helpers.mjs'

const T = { timeout: 300_000 }

for (const backend of BACKENDS) {
  test(`${backend}: a path, a WAV Buffer, a Uint8Array and a Float32Array of the same clip give the same transcript`, T, async () => {
    // whisper-server keeps its whisper state from one request to the next, and
    // its transcripts depend on earlier requests (stella.wav: "Stella" first,
    // "Taylor" after); a fresh server per request compares like with like.
    const fresh = backend === 'server' ? { maxRequestsPerWorker: 1 } : {}
    const engine = newEngine({ backend, poolSize: 2, ...fresh })
    await engine.initialize()
    for (const clip of clips.slice(0, 3)) {
      const bytes = readFileSync(clip.path)
      const [fromPath, fromBuffer, fromUint8, fromSamples] = await Promise.all([
        engine.transcribe(clip.path),
        engine.transcribe(bytes),
        engine.transcribe(new Uint8Array(bytes)),
        engine.transcribe(samplesOf(clip.path)),
      ])
      for (const [name, r] of [['Buffer', fromBuffer], ['Uint8Array', fromUint8], ['Float32Array', fromSamples]]) {
        assert.equal(r.text, fromPath.text, `${clip.file} as ${name}`)
        assert.deepEqual(r.segments, fromPath.segments, `${clip.file} as ${name}`)
      }
    }
    const queued = await engine.getQueueStatus()
    assert.equal(queued.queueLength, 0)
    await engine.shutdown()
  })

  test(`${backend}: audio in memory that holds nothing to hear gets ERR_AUDIO_UNREADABLE; the engine serves on`, T, async () => {
    const engine = newEngine({ backend, poolSize: 1 })
    await engine.initialize()
    const bad = [
      ['an empty Float32Array', new Float32Array(0), /no samples/],
      ['a NaN sample', Float32Array.of(0, 0.5, NaN), /sample 2 is NaN/],
      ['an infinite sample', Float32Array.of(Infinity), /sample 0 is inf/],
      ['an empty Buffer', Buffer.alloc(0), /empty/],
      ['bytes that decode to nothing', Buffer.from('these bytes are no audio format at all'.repeat(20)), /cannot decode/],
    ]
    for (const [what, input, message] of bad) {
      await assert.rejects(
        engine.transcribe(input),
        (err) => withCode('ERR_AUDIO_UNREADABLE')(err) && message.test(err.message) && err.message.includes('audio in memory'),
        what,
      )
    }
    for (const wrong of [new Int16Array(8), new ArrayBuffer(8), [0.1, 0.2], { length: 3 }]) {
      await assert.rejects(engine.transcribe(wrong), (err) => withCode('ERR_INVALID_OPTIONS')(err) && /Float32Array/.test(err.message))
    }
    const ok = await engine.transcribe(samplesOf(clips[0].path))
    assert.ok(ok.text.length > 0)
    await engine.shutdown()
  })

  test(`${backend}: onProgress rises to 100 and onSegment delivers every segment of the result, in order, before it resolves`, T, async () => {
    const engine = newEngine({ backend, poolSize: 2 })
    await engine.initialize()
    const runs = clips.slice(0, 3).map((clip) => {
      const seen = { progress: [], segments: [], settled: false, late: [] }
      const promise = engine.transcribe(clip.path, {
        onProgress: (p) => (seen.settled ? seen.late : seen.progress).push(p),
        onSegment: (s) => (seen.settled ? seen.late : seen.segments).push(s),
      })
      return promise.then((result) => {
        seen.settled = true
        return { result, seen }
      })
    })
    for (const { result, seen } of await Promise.all(runs)) {
      assert.deepEqual(seen.segments, result.segments)
      assert.equal(seen.progress.at(-1), 100)
      assert.ok(seen.progress.every((p, i) => i === 0 || p > seen.progress[i - 1]), `${seen.progress}`)
      if (backend === 'worker') assert.ok(seen.progress.length > 1, `live progress: ${seen.progress}`)
      // Nothing comes after the Promise settled.
      await new Promise((resolve) => setImmediate(resolve))
      assert.deepEqual(seen.late, [])
    }
    // A callback that throws changes nothing.
    const r = await engine.transcribe(clips[0].path, {
      onProgress: () => {
        throw new Error('careless')
      },
      onSegment: () => {
        throw new Error('careless')
      },
    })
    assert.ok(r.text.length > 0)
    await assert.rejects(engine.transcribe(clips[0].path, { onProgress: 'yes' }), (err) => withCode('ERR_INVALID_OPTIONS')(err) && /onProgress/.test(err.message))
    await engine.shutdown()
  })
}
