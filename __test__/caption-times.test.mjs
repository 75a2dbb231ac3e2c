// Captions from results that whisper does not produce but a caller may pass:
// negative and huge times, holes in the segments array. Needs only
// lib/captions.js (no addon, no whisper.cpp).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

const { toSrt, toText, toVtt } = createRequire(import.meta.url)('../lib/captions.js')

const segment = (start, end, text) => ({ start, end, text, rawText: ` ${text}` })

test('a negative time is clamped to 0, never printed as -1:59:59,500', () => {
  const result = { segments: [segment(-500, 1200, 'early'), segment(-20, -10, 'earlier')] }
  assert.equal(toSrt(result), '1\n00:00:00,000 --> 00:00:01,200\n early\n\n2\n00:00:00,000 --> 00:00:00,000\n earlier\n\n')
  assert.equal(toVtt(result), 'WEBVTT\n\n00:00:00.000 --> 00:00:01.200\n early\n\n00:00:00.000 --> 00:00:00.000\n earlier\n\n')
})

test('huge times print their hours as plain digits, never in exponent notation', () => {
  const result = { segments: [segment(1e21, 1e21, 'late'), segment(360_000_000_000, 360_000_001_230, 'later')] }
  const srt = toSrt(result)
  assert.ok(!/e\+|NaN|Infinity/.test(srt), srt)
  assert.equal(srt, '1\n277777777777777:46:40,000 --> 277777777777777:46:40,000\n late\n\n2\n100000:00:00,000 --> 100000:00:01,230\n later\n\n')
  assert.ok(toVtt(result).includes('100000:00:00.000 --> 100000:00:01.230'))
  // Past 3.6e27 ms, String(hours) alone would print 1e+21.
  const far = toSrt({ segments: [segment(1e30, 1e30, 'far')] }).split('\n')[1]
  assert.match(far, /^\d{20,}:\d\d:\d\d,\d{3} --> \d{20,}:\d\d:\d\d,\d{3}$/)
})

test('non-finite times are refused with ERR_INVALID_OPTIONS naming the segment', () => {
  for (const bad of [NaN, Infinity, -Infinity, '12', null]) {
    for (const caption of [toSrt, toVtt]) {
      assert.throws(
        () => caption({ segments: [segment(0, 10, 'fine'), { start: bad, end: 10, text: 'bad', rawText: ' bad' }] }),
        (err) => err.code === 'ERR_INVALID_OPTIONS' && /segment 1/.test(err.message),
        String(bad),
      )
    }
  }
})

test('a sparse segments array numbers its cues 1, 2, 3 over the segments that exist', () => {
  const segments = []
  segments[1] = segment(0, 1000, 'one')
  segments[4] = segment(1000, 2000, 'two')
  segments[5] = segment(2000, 3000, 'three')
  const srt = toSrt({ segments })
  assert.deepEqual([...srt.matchAll(/^(\d+)\n\d\d:/gm)].map((m) => m[1]), ['1', '2', '3'])
  assert.equal(toText({ segments }), ' one\n two\n three\n')
  assert.equal(toVtt({ segments }).split('-->').length - 1, 3)
})
