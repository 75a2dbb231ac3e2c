// The Silero VAD model that setup converts from the silero-vad wheel
// (tools/silero-to-ggml): the pinned file, and real whisper-cli with
// --vad -vm finding the speech in real audio, and none in silence or noise.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { VAD_MODEL } from '../scripts/paths.mjs'
import { VAD_SOURCE } from '../scripts/vad-model.mjs'
import { wav } from '../scripts/wav.mjs'
import { clips, FIXTURES, missingPhrases, samplesOf, TINY_EN, WHISPER_CLI } from './helpers.mjs'

const RATE = 16000
/** Seconds a VAD boundary may move: Silero pads speech by 30 ms and works in 32 ms windows. */
const VAD_SLACK = 0.25
/** Seconds a word's start may move: whisper's token timestamps are coarser. */
const WORD_SLACK = 0.5
/**
 * whisper-cli's VAD runs on 4 threads whatever -t says (whisper_vad_default_context_params);
 * on 2 busy cores that is about 0.7 s per 32 ms window, so a run takes minutes.
 */
const CLI_TIMEOUT = 900_000

/** Where the speech is in pauses.wav, from its layout and the clips' own samples. */
function speechSpans() {
  const layout = JSON.parse(readFileSync(join(FIXTURES, 'pauses.json'), 'utf8'))
  const spans = []
  let at = 0
  for (const part of layout.parts) {
    if (part.silence) {
      at += part.silence
      continue
    }
    const samples = samplesOf(join(FIXTURES, part.clip))
    const loud = (v) => Math.abs(v) > 0.01
    const first = samples.findIndex(loud)
    const last = samples.findLastIndex(loud)
    const { keyPhrases } = clips.find((c) => c.file === part.clip)
    spans.push({ clip: part.clip, keyPhrases, start: at + first / RATE, end: at + last / RATE })
    at += samples.length / RATE
  }
  // The fixture is exactly this layout: nothing shifted the timeline.
  assert.equal(samplesOf(join(FIXTURES, layout.file)).length, Math.round(at * RATE))
  return { file: join(FIXTURES, layout.file), spans }
}

/** whisper-cli with Silero VAD: its JSON segments and the VAD's own segments (stderr). */
function whisperWithVad(audio, extra = []) {
  const dir = mkdtempSync(join(tmpdir(), 'pw-vad-'))
  try {
    const args = ['-m', TINY_EN, '-f', audio, '-t', '2', '-l', 'en', '--vad', '-vm', VAD_MODEL, ...extra, '-oj', '-of', join(dir, 'out')]
    const r = spawnSync(WHISPER_CLI, args, { encoding: 'utf8', timeout: CLI_TIMEOUT, killSignal: 'SIGKILL' })
    assert.equal(r.status, 0, r.error?.message ?? r.stderr)
    assert.match(r.stderr, /loading VAD model from/, 'the VAD ran')
    assert.doesNotMatch(r.stderr, /failed to (initialize|compute) VAD|error:/, r.stderr)
    // whisper_vad_segments_from_probs: VAD segment 0: start = 0.55, end = 2.24 (duration: 1.69)
    const vad = [...r.stderr.matchAll(/VAD segment \d+: start = ([\d.]+), end = ([\d.]+)/g)].map((m) => ({
      start: Number(m[1]),
      end: Number(m[2]),
    }))
    const json = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8'))
    const segments = json.transcription
      .map((s) => ({ start: s.offsets.from / 1000, end: s.offsets.to / 1000, text: s.text.trim() }))
      .filter((s) => s.text !== '')
    return { vad, segments, stderr: r.stderr }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

test('the provisioned Silero VAD model is the pinned conversion of the silero-vad wheel', () => {
  assert.equal(basename(VAD_MODEL), `ggml-silero-v${VAD_SOURCE.version}.bin`)
  const bytes = readFileSync(VAD_MODEL)
  assert.equal(bytes.length, VAD_SOURCE.bytes)
  assert.equal(createHash('sha256').update(bytes).digest('hex'), VAD_SOURCE.sha256)
  // ggml magic, then the model type and the silero-vad version whisper.cpp reads back.
  assert.equal(bytes.readUInt32LE(0), 0x67676d6c)
  assert.equal(bytes.toString('latin1', 8, 8 + bytes.readInt32LE(4)), 'silero-16k')
  const [major, minor, patch] = VAD_SOURCE.version.split('.').map(Number)
  assert.deepEqual([bytes.readInt32LE(18), bytes.readInt32LE(22), bytes.readInt32LE(26)], [major, minor, patch])
})

test('whisper-cli --vad finds the sentences between long pauses and times their words on the original timeline', { timeout: CLI_TIMEOUT + 60_000 }, () => {
  const { file, spans } = speechSpans()
  // One segment per word (-ml 1 -sow): each word's time says which sentence it was placed in.
  const { vad, segments, stderr } = whisperWithVad(file, ['-ml', '1', '-sow'])

  // The VAD itself: every segment lies on speech, and every sentence starts and ends a segment.
  for (const v of vad) {
    const on = spans.some((s) => v.start >= s.start - VAD_SLACK && v.end <= s.end + VAD_SLACK)
    assert.ok(on, `VAD segment ${v.start}-${v.end} s is not on speech (${JSON.stringify(spans)})\n${stderr}`)
  }
  for (const s of spans) {
    assert.ok(vad.some((v) => Math.abs(v.start - s.start) <= VAD_SLACK), `no VAD segment starts near ${s.start} s (${s.clip}): ${JSON.stringify(vad)}`)
    assert.ok(vad.some((v) => Math.abs(v.end - s.end) <= VAD_SLACK), `no VAD segment ends near ${s.end} s (${s.clip}): ${JSON.stringify(vad)}`)
  }

  // The transcript: every word starts inside a sentence, never in a pause, and each
  // sentence's words are its own. Without the mapping back from the VAD's cut-down
  // audio, the second sentence would start seconds early, inside the pause.
  const said = spans.map(() => [])
  for (const word of segments) {
    const i = spans.findIndex((s) => word.start >= s.start - WORD_SLACK && word.start <= s.end + WORD_SLACK)
    assert.ok(i >= 0, `"${word.text}" starts at ${word.start} s, in a pause (${JSON.stringify(spans)})`)
    said[i].push(word.text)
  }
  spans.forEach((s, i) => {
    assert.deepEqual(missingPhrases(said[i].join(' '), s.keyPhrases), [], `${s.clip} at ${s.start}-${s.end} s heard as: ${said[i].join(' ')}`)
  })
  const last = spans.at(-1)
  assert.ok(Math.abs(segments.at(-1).end - last.end) <= WORD_SLACK, `the last word ends at ${segments.at(-1).end} s, the speech at ${last.end} s`)
})

test('silence alone, or noise alone, gives no speech segments', { timeout: 2 * CLI_TIMEOUT + 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pw-vad-quiet-'))
  try {
    const seconds = 2
    const silence = Buffer.alloc(seconds * RATE * 2)
    // White noise at about -26 dBFS, from a fixed LCG: the same file every run.
    const noise = Buffer.alloc(seconds * RATE * 2)
    let seed = 12345
    for (let i = 0; i < seconds * RATE; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      noise.writeInt16LE(Math.round(((seed / 2 ** 32) * 2 - 1) * 0.05 * 32767), i * 2)
    }
    for (const [name, samples] of [['silence', silence], ['noise', noise]]) {
      const path = join(dir, `${name}.wav`)
      writeFileSync(path, wav(samples))
      const { vad, segments } = whisperWithVad(path)
      assert.deepEqual(vad, [], `${name}: VAD segments`)
      assert.deepEqual(segments, [], `${name}: transcript`)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
