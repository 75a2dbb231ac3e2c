// The project's CTranslate2 -> ggml converter, checked by whisper itself.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { converter, ct2Model } from '../scripts/setup.mjs'
import { MODEL_SOURCES } from '../scripts/paths.mjs'
import { JFK_WAV, missingPhrases, newEngine } from './helpers.mjs'

test('a freshly converted tiny.en loads in whisper-cli and transcribes the JFK sample', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pw-convert-'))
  const out = join(dir, 'ggml-tiny.en.bin')
  const r = spawnSync(converter(), [ct2Model('tiny.en'), out], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  // Byte for byte the size of the official ggml-tiny.en.bin, and ggml's magic up front.
  assert.equal(statSync(out).size, MODEL_SOURCES['tiny.en'].ggmlBytes)
  assert.equal(readFileSync(out).readUInt32LE(0), 0x67676d6c)

  const engine = newEngine({ modelPath: out, poolSize: 1 })
  await engine.initialize()
  const result = await engine.transcribe(JFK_WAV)
  await engine.shutdown()
  rmSync(dir, { recursive: true })
  assert.deepEqual(missingPhrases(result.text, ['and so my fellow americans', 'ask not what your country can do for you', 'ask what you can do for your country']), [], result.text)
  assert.ok(result.segments.at(-1).end > 10_000, 'the 11 s sample is covered')
})
