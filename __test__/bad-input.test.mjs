// Every bad input a user can drop on the engine, with real whisper.cpp and
// both backends: each gets its code (or, for odd but valid audio, a result),
// and the engine serves on afterwards.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { BACKENDS, clips, FIXTURES, missingPhrases, newEngine, wav, wavParts, withCode, WHISPER_CLI } from './helpers.mjs'

const T = { timeout: 300_000 }
const fox = clips.find((c) => c.file === 'fox.wav')

function badFiles() {
  const dir = mkdtempSync(join(tmpdir(), 'pw-bad-'))
  const put = (name, bytes) => {
    const p = join(dir, name)
    writeFileSync(p, bytes)
    return p
  }
  const { header, data } = wavParts(fox.path)
  const odd = join(dir, 'a dir with spaces')
  mkdirSync(odd)
  const strange = join(odd, `it's "quoted" – ñandú 音声.wav`)
  copyFileSync(fox.path, strange)
  return {
    dir,
    missing: join(dir, 'missing.wav'),
    directory: odd,
    empty: put('empty.wav', Buffer.alloc(0)),
    text: put('notes.wav', 'this is text, not audio\n'),
    random: put('random.wav', randomBytes(8192)),
    headerOnly: put('header-only.wav', header),
    // The header claims the whole clip; only the first half is there.
    truncated: put('truncated.wav', Buffer.concat([header, data.subarray(0, data.length / 2)])),
    m4a: join(FIXTURES, 'fox.m4a'),
    silence: put('silence.wav', wav(Buffer.alloc(3 * 32000))),
    short: put('short.wav', Buffer.concat([header, data.subarray(0, Math.round(0.3 * 32000))])),
    strange,
    dash: put('-fox.wav', readFileSync(fox.path)),
    // A header that describes no audio: 0 channels.
    noChannels: put('no-channels.wav', Buffer.concat([header.subarray(0, 22), Buffer.from([0, 0]), header.subarray(24), data])),
  }
}

for (const backend of BACKENDS) {
  test(`${backend}: bad input gets its code, odd audio a result, and the engine serves on`, T, async () => {
    const f = badFiles()
    const engine = newEngine({ backend, poolSize: 2 })
    await engine.initialize()

    for (const [name, code] of [
      ['missing', 'ERR_AUDIO_NOT_FOUND'],
      ['directory', 'ERR_AUDIO_UNREADABLE'],
      ['empty', 'ERR_AUDIO_UNREADABLE'],
      ['text', 'ERR_AUDIO_UNREADABLE'],
      ['random', 'ERR_AUDIO_UNREADABLE'],
      ['headerOnly', 'ERR_AUDIO_UNREADABLE'],
      ['m4a', 'ERR_AUDIO_UNREADABLE'],
      ['noChannels', 'ERR_AUDIO_UNREADABLE'],
    ]) {
      await assert.rejects(engine.transcribe(f[name]), withCode(code), name)
    }

    // Odd but valid audio is a result, with whatever text whisper gives it.
    for (const name of ['silence', 'short', 'truncated']) {
      const r = await engine.transcribe(f[name])
      assert.equal(typeof r.text, 'string', name)
      assert.equal(r.text, r.segments.map((s) => s.text).join(' ').trim(), name)
    }
    assert.match((await engine.transcribe(f.truncated)).text.toLowerCase(), /quick/, 'the half that is there')

    // Paths that break shells and argument parsers work.
    for (const path of [f.strange, f.dash]) {
      assert.deepEqual(missingPhrases((await engine.transcribe(path)).text, fox.keyPhrases), [], path)
    }
    const cwd = process.cwd()
    process.chdir(f.dir)
    try {
      for (const path of ['-fox.wav', relative(f.dir, f.strange), relative(f.dir, fox.path)]) {
        assert.deepEqual(missingPhrases((await engine.transcribe(path)).text, fox.keyPhrases), [], path)
      }
    } finally {
      process.chdir(cwd)
    }

    const after = await Promise.all(clips.slice(1, 4).map((c) => engine.transcribe(c.path)))
    after.forEach((r, i) => assert.deepEqual(missingPhrases(r.text, clips[i + 1].keyPhrases), []))
    const status = await engine.getStatus()
    assert.equal(status.workerCount, 2)
    assert.equal(status.poolStats.workersReplaced, 0, 'bad input is not a worker failure')
    await engine.shutdown()
  })
}

test('a whisper binary that is not executable is refused with ERR_WHISPER_NOT_FOUND', T, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pw-bin-'))
  for (const [backend, option, name] of [['cli', 'whisperPath', 'whisper-cli'], ['server', 'serverPath', 'whisper-server']]) {
    const copy = join(dir, name)
    copyFileSync(WHISPER_CLI, copy)
    chmodSync(copy, 0o644)
    await assert.rejects(
      newEngine({ backend, [option]: copy }).initialize(),
      (err) => withCode('ERR_WHISPER_NOT_FOUND')(err) && /not executable/.test(err.message),
    )
  }
})
