'use strict'
// `persistent-whisper transcribe <files...>`: every file goes to one engine
// at once; a live view on a terminal, one line per file otherwise; results
// beside each input, in --output-dir, or on stdout for a single file.
const fs = require('node:fs')
const path = require('node:path')
const { PersistentWhisperEngine } = require('../index')
const { toSrt, toText, toVtt } = require('../captions')
const { Display } = require('./display')
const { printable } = require('./format')
const { planOutputs } = require('./outputs')

const FORMATS = {
  txt: toText,
  srt: toSrt,
  vtt: toVtt,
  json: (result) => `${JSON.stringify(result, null, 2)}\n`,
}

const HELP = `usage: persistent-whisper transcribe <files...> [options]

Transcribes every file at once with a pool of whisper workers. On a
terminal a live view shows each worker, files done, audio seconds per second
and an ETA; otherwise one line per finished file goes to stderr. Results go
beside each input (meeting.wav -> meeting.srt), into --output-dir, or to
stdout for a single file without --output-dir. Refused before anything runs
(exit 2): an input that is not a regular file (a FIFO, a folder), two inputs
whose results would have the same name, a result that would overwrite an
input. The exit code is 0 only when every file succeeded. Ctrl-C aborts
every request and ends every worker.

options:
  --model NAME|PATH   a catalogue model (see models list) or a ggml file (default: base.en)
  --format FORMAT     txt, json, srt or vtt (default: txt)
  --output-dir DIR    write results into DIR
  --language L        spoken language code, or auto (default: en)
  --backend B         worker, cli or server (default: worker)
  --pool-size N       workers, 1 to 64 (default: 3)
  --threads N         whisper threads per request (default: a share of the cores)
  --model-dir DIR     where catalogue models are stored (default: the cache folder)`

const OPTIONS = {
  model: { type: 'string', default: 'base.en' },
  format: { type: 'string', default: 'txt' },
  'output-dir': { type: 'string' },
  language: { type: 'string' },
  backend: { type: 'string', default: 'worker' },
  'pool-size': { type: 'string' },
  threads: { type: 'string' },
  'model-dir': { type: 'string' },
}

const { O_RDONLY, O_NONBLOCK = 0 } = fs.constants

/**
 * Seconds of audio in a file: a WAV header's, else a size-based estimate.
 * Opened without blocking (a file swapped for a FIFO since the check must
 * not hang the command) and read only if it is a regular file.
 */
function audioSeconds(file) {
  try {
    const fd = fs.openSync(file, O_RDONLY | O_NONBLOCK)
    const head = Buffer.alloc(4096)
    let n = 0
    let size = 0
    try {
      const stat = fs.fstatSync(fd)
      if (!stat.isFile()) return 0
      size = stat.size
      n = fs.readSync(fd, head, 0, head.length, 0)
    } finally {
      fs.closeSync(fd)
    }
    if (n >= 44 && head.toString('latin1', 0, 4) === 'RIFF' && head.toString('latin1', 8, 12) === 'WAVE') {
      const byteRate = head.readUInt32LE(28)
      const data = head.indexOf('data', 12, 'latin1')
      if (byteRate > 0 && data > 0) return Math.min(head.readUInt32LE(data + 4), size - data - 8) / byteRate
    }
    return size / 2000
  } catch {
    return 0
  }
}

async function run(args, { parse, integer, UsageError }) {
  const parsed = parse(args, OPTIONS, HELP)
  if (!parsed) return 0
  const { values, positionals: files } = parsed
  if (files.length === 0) throw new UsageError(`no files given\n\n${HELP}`)
  const format = values.format
  if (!FORMATS[format]) throw new UsageError(`--format must be txt, json, srt or vtt (got ${JSON.stringify(format)})`)
  const outputDir = values['output-dir'] && path.resolve(values['output-dir'])
  const toStdout = files.length === 1 && !outputDir
  const targets = planOutputs(files, { format, outputDir, toStdout, UsageError })
  if (outputDir) fs.mkdirSync(outputDir, { recursive: true })

  let engine
  try {
    engine = new PersistentWhisperEngine({
      modelPath: values.model,
      modelDir: values['model-dir'],
      backend: values.backend,
      language: values.language,
      poolSize: integer('pool-size', values['pool-size'], 1, 64),
      threads: integer('threads', values.threads, 1, 1024),
      logLevel: 'silent',
    })
  } catch (err) {
    if (err.code === 'ERR_INVALID_OPTIONS') throw new UsageError(err.message)
    throw err
  }
  const display = new Display({ engine, files, tty: Boolean(process.stderr.isTTY), out: process.stderr })
  const controller = new AbortController()
  let interrupted = false
  const onSigint = () => {
    interrupted = true
    controller.abort()
  }
  process.on('SIGINT', onSigint)
  const failures = []
  try {
    await engine.initialize()
    display.start()
    await Promise.all(
      files.map(async (file) => {
        display.queued(file, audioSeconds(file))
        try {
          const result = await engine.transcribe(file, { signal: controller.signal, onProgress: (p) => display.progress(file, p) })
          const text = FORMATS[format](result)
          if (toStdout) {
            process.stdout.write(text)
            display.done(file, 'stdout')
          } else {
            const target = targets.get(file)
            fs.writeFileSync(target, text)
            display.done(file, target)
          }
        } catch (err) {
          failures.push({ file, err })
          display.failed(file, err)
        }
      }),
    )
  } finally {
    display.stop()
    await engine.shutdown().catch(() => {})
    process.off('SIGINT', onSigint)
  }
  if (failures.length) {
    process.stderr.write(`\n${failures.length} of ${files.length} file${files.length > 1 ? 's' : ''} failed:\n`)
    for (const { file, err } of failures) process.stderr.write(`  ${printable(file)}: ${err.code ?? 'ERROR'}: ${printable(err.message)}\n`)
  }
  if (interrupted) return 130
  return failures.length ? 1 : 0
}

module.exports = { run }
