'use strict'
// Captions from a TranscriptionResult, byte for byte what whisper-cli writes
// with -osrt, -ovtt and -otxt for the same file and settings (its
// output_srt, output_vtt and output_txt in examples/cli/cli.cpp): each
// segment's text as whisper produced it (`rawText`, with its leading space),
// and whisper's timestamps, which count in hundredths of a second.

function invalidResult(what) {
  const err = new Error(`invalid option \`result\`: ${what}; pass what transcribe() resolved with`)
  err.code = 'ERR_INVALID_OPTIONS'
  return err
}

/**
 * The segments to print, numbered from 1 over those that exist: holes of a
 * sparse array are skipped (filter does), a null or malformed one refused.
 */
function segmentsOf(result) {
  const segments = result?.segments
  if (!Array.isArray(segments)) throw invalidResult('it has no segments array')
  return segments.filter(() => true).map((s, i) => {
    if (!s || !Number.isFinite(s.start) || !Number.isFinite(s.end)) throw invalidResult(`segment ${i} has no start and end (finite numbers of milliseconds)`)
    const text = typeof s.rawText === 'string' ? s.rawText : typeof s.text === 'string' ? ` ${s.text}` : undefined
    if (text === undefined) throw invalidResult(`segment ${i} has no text`)
    return { start: s.start, end: s.end, text }
  })
}

/**
 * hh:mm:ss,mmm (SRT) or hh:mm:ss.mmm (VTT), as whisper's to_timestamp()
 * prints it. A negative time (no caption starts before the audio) is 0; the
 * arithmetic is on BigInt so that hours past 2^53 ms print as plain digits.
 */
function timestamp(ms, separator) {
  // whisper's times are whole hundredths; the engine reports them in ms.
  const hundredths = BigInt(Math.max(0, Math.round(ms / 10)))
  const hours = hundredths / 360_000n
  const minutes = (hundredths / 6_000n) % 60n
  const seconds = (hundredths / 100n) % 60n
  const millis = (hundredths % 100n) * 10n
  const pad = (n, width) => String(n).padStart(width, '0')
  return `${pad(hours, 2)}:${pad(minutes, 2)}:${pad(seconds, 2)}${separator}${pad(millis, 3)}`
}

/** SubRip captions. */
function toSrt(result) {
  return segmentsOf(result)
    .map((s, i) => `${i + 1}\n${timestamp(s.start, ',')} --> ${timestamp(s.end, ',')}\n${s.text}\n\n`)
    .join('')
}

/** WebVTT captions. */
function toVtt(result) {
  return `WEBVTT\n\n${segmentsOf(result)
    .map((s) => `${timestamp(s.start, '.')} --> ${timestamp(s.end, '.')}\n${s.text}\n\n`)
    .join('')}`
}

/** Plain text, one segment per line. */
function toText(result) {
  return segmentsOf(result)
    .map((s) => `${s.text}\n`)
    .join('')
}

module.exports = { toSrt, toText, toVtt }
