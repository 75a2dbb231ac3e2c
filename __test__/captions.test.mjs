// toSrt, toVtt and toText equal what whisper-cli itself writes with -osrt,
// -ovtt and -otxt for the same file and settings, on every clip.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { clips, newEngine, pw, TINY_EN, WHISPER_CLI, withCode } from './helpers.mjs'

const T = { timeout: 300_000 }

/** whisper-cli's own caption files for a clip. */
function whisperCaptions(clip) {
  const out = join(mkdtempSync(join(tmpdir(), 'pw-captions-')), 'out')
  const r = spawnSync(WHISPER_CLI, ['-m', TINY_EN, '-f', clip, '-t', '2', '-l', 'en', '-np', '-osrt', '-ovtt', '-otxt', '-of', out], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  return { srt: readFileSync(`${out}.srt`, 'utf8'), vtt: readFileSync(`${out}.vtt`, 'utf8'), txt: readFileSync(`${out}.txt`, 'utf8') }
}

for (const backend of ['cli', 'worker']) {
  test(`${backend}: captions equal whisper-cli's -osrt, -ovtt and -otxt on every clip`, T, async () => {
    const engine = newEngine({ backend, poolSize: 1, threads: 2 })
    await engine.initialize()
    for (const clip of clips) {
      const result = await engine.transcribe(clip.path)
      const own = whisperCaptions(clip.path)
      assert.equal(pw.toSrt(result), own.srt, `${clip.file} srt`)
      assert.equal(pw.toVtt(result), own.vtt, `${clip.file} vtt`)
      assert.equal(pw.toText(result), own.txt, `${clip.file} txt`)
      // A result that went through JSON gives the same captions.
      assert.equal(pw.toSrt(JSON.parse(JSON.stringify(result))), own.srt)
    }
    await engine.shutdown()
  })
}

test('captions of hours-long timestamps and of something that is not a result', () => {
  const result = { segments: [{ start: 3_723_450, end: 3_725_000, text: 'late', rawText: ' late' }] }
  assert.equal(pw.toSrt(result), '1\n01:02:03,450 --> 01:02:05,000\n late\n\n')
  assert.equal(pw.toVtt(result), 'WEBVTT\n\n01:02:03.450 --> 01:02:05.000\n late\n\n')
  assert.equal(pw.toText({ segments: [] }), '')
  for (const bad of [null, {}, { segments: [{ start: 0 }] }]) assert.throws(() => pw.toSrt(bad), withCode('ERR_INVALID_OPTIONS'))
})
