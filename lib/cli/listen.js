'use strict'
// `persistent-whisper listen [file|-]`: live dictation from raw PCM on stdin
// (a microphone through arecord, sox or ffmpeg) or from a WAV file played in
// as if recorded. Finals go to stdout, one line per utterance; on a terminal
// the partial text of the utterance under way is shown on stderr.
const fs = require('node:fs')
const { PersistentWhisperEngine } = require('../index')
const { printable } = require('./format')

const HELP = `usage: persistent-whisper listen [file|-] [options]

Live dictation: reads audio as it comes and prints each utterance once the
speaker pauses (stdout, one line each). Without a file, or with -, it reads
raw mono PCM from stdin, for example from a microphone:

  arecord -q -f S16_LE -r 16000 -c 1 -t raw | npx persistent-whisper listen
  ffmpeg -loglevel quiet -f pulse -i default -ac 1 -ar 16000 -f s16le - | npx persistent-whisper listen

A WAV file (16-bit PCM, mono) is played in as if recorded. Needs the Silero
VAD model beside the whisper model (models download silero-v6.2.0). Ctrl-C
or the end of the input finishes the utterance under way.

options:
  --model NAME|PATH   a catalogue model or a ggml file (default: base.en)
  --model-dir DIR     where catalogue models are stored (default: the cache folder)
  --language L        spoken language code, or auto (default: en)
  --rate HZ           sample rate of raw input (default: 16000)
  --encoding E        raw input's samples: s16le or f32le (default: s16le)
  --no-partials       no partial text while someone speaks
  --timestamps        each line starts with the utterance's [start --> end]`

const OPTIONS = {
  model: { type: 'string', default: 'base.en' },
  'model-dir': { type: 'string' },
  language: { type: 'string' },
  rate: { type: 'string' },
  encoding: { type: 'string', default: 's16le' },
  'no-partials': { type: 'boolean', default: false },
  timestamps: { type: 'boolean', default: false },
}

/** The sample rate and 16-bit samples of a mono PCM WAV file, or a UsageError. */
function readWav(file, UsageError) {
  const bytes = fs.readFileSync(file)
  if (bytes.toString('latin1', 0, 4) !== 'RIFF' || bytes.toString('latin1', 8, 12) !== 'WAVE') {
    throw new UsageError(`${printable(file)} is not a WAV file: pipe other audio in as raw PCM (see --help)`)
  }
  let at = 12
  let format = null
  while (at + 8 <= bytes.length) {
    const id = bytes.toString('latin1', at, at + 4)
    const size = bytes.readUInt32LE(at + 4)
    const body = bytes.subarray(at + 8, Math.min(bytes.length, at + 8 + size))
    if (id === 'fmt ' && body.length >= 16) {
      format = { tag: body.readUInt16LE(0), channels: body.readUInt16LE(2), rate: body.readUInt32LE(4), bits: body.readUInt16LE(14) }
    } else if (id === 'data') {
      if (!format || format.tag !== 1 || format.channels !== 1 || format.bits !== 16) {
        throw new UsageError(`${printable(file)} is not 16-bit mono PCM: convert it, or pipe it in as raw PCM (see --help)`)
      }
      return { rate: format.rate, data: body.subarray(0, body.length & ~1) }
    }
    at += 8 + size + (size & 1)
  }
  throw new UsageError(`${printable(file)} has no audio data`)
}

const clock = (ms) => {
  const s = ms / 1000
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${(s % 60).toFixed(1).padStart(4, '0')}`
}

async function run(args, { parse, integer, UsageError }) {
  const parsed = parse(args, OPTIONS, HELP)
  if (!parsed) return 0
  const { values, positionals } = parsed
  if (positionals.length > 1) throw new UsageError(`listen takes one input (got ${positionals.length})\n\n${HELP}`)
  const source = positionals[0] ?? '-'
  if (!['s16le', 'f32le'].includes(values.encoding)) throw new UsageError(`--encoding must be s16le or f32le (got ${JSON.stringify(values.encoding)})`)
  const wav = source === '-' ? null : readWav(source, UsageError)
  if (wav && values.rate !== undefined) throw new UsageError('--rate is for raw input: a WAV file says its own rate')
  const rate = wav ? wav.rate : (integer('rate', values.rate, 8000, 192000) ?? 16000)
  const float = !wav && values.encoding === 'f32le'

  let engine
  try {
    engine = new PersistentWhisperEngine({ modelPath: values.model, modelDir: values['model-dir'], language: values.language, poolSize: 2, logLevel: 'silent' })
  } catch (err) {
    if (err.code === 'ERR_INVALID_OPTIONS') throw new UsageError(err.message)
    throw err
  }
  const tty = Boolean(process.stderr.isTTY)
  let failed = false
  try {
    await engine.initialize()
    const session = engine.listen({ sampleRate: rate, partials: tty && !values['no-partials'] })
    const clearLine = () => tty && process.stderr.write('\r\x1b[K')
    session.on('partial', (p) => tty && process.stderr.write(`\r\x1b[K… ${printable(p.text.trim()).slice(-(process.stderr.columns ?? 80) + 3)}`))
    session.on('final', (f) => {
      clearLine()
      const stamp = values.timestamps ? `[${clock(f.startMs)} --> ${clock(f.endMs)}] ` : ''
      process.stdout.write(`${stamp}${printable(f.text.trim())}\n`)
    })
    session.on('error', (err) => {
      // A session that cannot start rejects end(), which says so once.
      if (!('utterance' in err)) return
      clearLine()
      failed = true
      process.stderr.write(`persistent-whisper: ${err.code}: ${printable(err.message)}\n`)
    })
    const onSigint = () => session.end()
    process.once('SIGINT', onSigint)
    // Raw s16le may arrive split mid-sample: the session takes bytes as they come.
    let carry = Buffer.alloc(0)
    const write = (chunk) => {
      if (!float) return session.write(chunk)
      const bytes = carry.length ? Buffer.concat([carry, chunk]) : chunk
      const whole = bytes.length & ~3
      carry = Buffer.from(bytes.subarray(whole))
      const copy = Buffer.from(bytes.subarray(0, whole))
      return session.write(new Float32Array(copy.buffer, copy.byteOffset, whole / 4))
    }
    if (wav) {
      // Played in at ten times real time, in 100 ms pieces.
      const piece = Math.round(rate / 10) * 2
      for (let i = 0; i < wav.data.length && !session.closed; i += piece) {
        write(wav.data.subarray(i, i + piece))
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    } else {
      for await (const chunk of process.stdin) if (!write(chunk)) break
    }
    await session.end()
    process.off('SIGINT', onSigint)
  } finally {
    await engine.shutdown().catch(() => {})
  }
  return failed ? 1 : 0
}

module.exports = { run }
