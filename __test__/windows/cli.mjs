// The command line on Windows: `persistent-whisper transcribe` in node.exe,
// files and an output folder with drive letters, spaces and wide letters.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { ROOT, SLOW, TINY_EN, clips, missingPhrases, pw, scratch, wideCopy } from './common.mjs'

const BIN = join(ROOT, 'bin', 'persistent-whisper.js')
const dir = scratch('cli')
after(() => rmSync(dir, { recursive: true, force: true }))

const cli = (args) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 600_000 })

for (const backend of ['worker', 'cli']) {
  test(`transcribe --backend ${backend}: two files into --output-dir as SubRip, beside no input`, SLOW, () => {
    const inputs = [clips[4], clips[5]].map((c) => ({ ...c, copy: wideCopy(c, dir) }))
    const out = join(dir, `srt ${backend} 字幕`)
    const r = cli(['transcribe', ...inputs.map((i) => i.copy), '--model', TINY_EN, '--format', 'srt', '--output-dir', out, '--backend', backend, '--pool-size', '2'])
    assert.equal(r.status, 0, r.stderr)
    for (const input of inputs) {
      const srt = readFileSync(join(out, `clip журнал 日本語 ü ${input.file.replace(/\.wav$/, '')}.srt`), 'utf8')
      assert.match(srt, /^1\r?\n00:00:00,000 --> /)
      assert.deepEqual(missingPhrases(srt, input.keyPhrases), [], srt)
    }
    assert.equal(readdirSync(out).length, 2)
  })
}

test('transcribe of a folder is refused up front with exit 2 and says why', () => {
  const r = cli(['transcribe', dir, '--model', TINY_EN])
  assert.equal(r.status, 2, r.stderr)
  assert.match(r.stderr, /not a regular file|folder|directory/i)
})

test('models path names the model in the Windows cache folder, and how to get it', () => {
  const r = cli(['models', 'path', 'tiny.en'])
  assert.equal(r.stdout.trim(), join(pw.defaultModelDir(), 'ggml-tiny.en.bin'))
  assert.equal(r.status, 1, 'not downloaded there')
  assert.match(r.stderr, /run: npx persistent-whisper models download tiny\.en/)
})
