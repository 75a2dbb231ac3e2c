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

function segmentsOf(result) {
  const segments = result?.segments
  if (!Array.isArray(segments)) throw invalidResult('it has no segments array')
  return segments.map((s, i) => {
    if (!s || !Number.isFinite(s.start) || !Number.isFinite(s.end)) throw invalidResult(`segment ${i} has no start and end`)
    const text = typeof s.rawText === 'string' ? s.rawText : typeof s.text === 'string' ? ` ${s.text}` : undefined
    if (text === undefined) throw invalidResult(`segment ${i} has no text`)
    return { start: s.start, end: s.end, text }
  })
}

/** hh:mm:ss,mmm (SRT) or hh:mm:ss.mmm (VTT), as whisper's to_timestamp() prints it. */
function timestamp(ms, separator) {
  // whisper's times are whole hundredths; the engine reports them in ms.
  let rest = Math.round(ms / 10) * 10
  const hours = Math.floor(rest / 3_600_000)
  rest -= hours * 3_600_000
  const minutes = Math.floor(rest / 60_000)
  rest -= minutes * 60_000
  const seconds = Math.floor(rest / 1000)
  rest -= seconds * 1000
  const pad = (n, width) => String(n).padStart(width, '0')
  return `${pad(hours, 2)}:${pad(minutes, 2)}:${pad(seconds, 2)}${separator}${pad(rest, 3)}`
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
