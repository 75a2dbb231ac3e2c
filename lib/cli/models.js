'use strict'
// `persistent-whisper models list | download | path`.
const { defaultModelDir, downloadModel, listModels } = require('../models')
const { catalogueEntry } = require('../catalogue')
const { bar, bytes } = require('./format')

const HELP = {
  list: `usage: persistent-whisper models list [--dir DIR]

Lists the catalogue of whisper.cpp's official ggml models: name, size, and
whether it is in DIR (default: ${defaultModelDir()}).`,
  download: `usage: persistent-whisper models download <name> [--dir DIR]
       persistent-whisper models download --url URL (--sha256 HEX | --sha1 HEX) [--dir DIR]

Downloads a catalogue model (see models list), or any ggml model by URL with
its checksum, into DIR (default: ${defaultModelDir()}). The file is verified
before it appears; an interrupted download resumes. Prints the file's path.
PERSISTENT_WHISPER_MODEL_BASE_URL replaces the catalogue's base URL (a
mirror); HTTPS_PROXY, HTTP_PROXY and NO_PROXY are honoured.`,
  path: `usage: persistent-whisper models path <name> [--dir DIR]

Prints where a catalogue model is stored; exits 1 if it is not downloaded.`,
}

const USAGE = `usage: persistent-whisper models <list | download | path> [options]

${HELP.list}

${HELP.download}

${HELP.path}`

async function list(args, { parse }) {
  const parsed = parse(args, { dir: { type: 'string' } }, HELP.list, { positionals: false })
  if (!parsed) return 0
  const rows = listModels({ dir: parsed.values.dir })
  const width = Math.max(...rows.map((r) => r.name.length))
  for (const r of rows) {
    process.stdout.write(`${r.name.padEnd(width)}  ${bytes(r.approxBytes).padStart(9)}  ${r.downloaded ? 'downloaded' : '-'}\n`)
  }
  return 0
}

async function download(args, { parse, UsageError }) {
  const parsed = parse(args, { dir: { type: 'string' }, url: { type: 'string' }, sha256: { type: 'string' }, sha1: { type: 'string' } }, HELP.download)
  if (!parsed) return 0
  const { values, positionals } = parsed
  let spec
  if (values.url !== undefined) {
    if (positionals.length) throw new UsageError(`give a model name or --url, not both\n\n${HELP.download}`)
    spec = { url: values.url, sha256: values.sha256, sha1: values.sha1 }
    if (spec.sha256 === undefined) delete spec.sha256
    if (spec.sha1 === undefined) delete spec.sha1
    if (!spec.sha256 && !spec.sha1) throw new UsageError(`--url needs --sha256 HEX (or --sha1 HEX): a download is always verified\n\n${HELP.download}`)
  } else {
    if (positionals.length !== 1) throw new UsageError(`give one model name (see models list)\n\n${HELP.download}`)
    spec = positionals[0]
  }
  const tty = process.stderr.isTTY
  const controller = new AbortController()
  const onSigint = () => controller.abort()
  process.once('SIGINT', onSigint)
  let last = 0
  try {
    const file = await downloadModel(spec, {
      dir: values.dir,
      signal: controller.signal,
      onProgress: ({ bytes: done, total, percent }) => {
        if (tty) {
          process.stderr.write(`\r\x1b[K${bar(percent ?? 0, 30)} ${bytes(done)}${total ? ` of ${bytes(total)}` : ''}`)
        } else if (percent !== undefined && percent >= last + 10) {
          last = percent - (percent % 10)
          process.stderr.write(`downloaded ${percent}% (${bytes(done)})\n`)
        }
      },
    })
    if (tty) process.stderr.write('\r\x1b[K')
    process.stdout.write(`${file}\n`)
    return 0
  } catch (err) {
    if (tty) process.stderr.write('\n')
    if (err.code === 'ERR_ABORTED') {
      process.stderr.write(`persistent-whisper: ${err.message}\n`)
      return 130
    }
    throw err
  } finally {
    process.off('SIGINT', onSigint)
  }
}

async function where(args, { parse, UsageError }) {
  const parsed = parse(args, { dir: { type: 'string' } }, HELP.path)
  if (!parsed) return 0
  const [name] = parsed.positionals
  if (parsed.positionals.length !== 1 || !catalogueEntry(name)) throw new UsageError(`give one catalogue model name (see models list)\n\n${HELP.path}`)
  const model = listModels({ dir: parsed.values.dir }).find((m) => m.name === name)
  process.stdout.write(`${model.path}\n`)
  if (!model.downloaded) {
    process.stderr.write(`persistent-whisper: ${name} is not downloaded; run: npx persistent-whisper models download ${name}\n`)
    return 1
  }
  return 0
}

async function run(args, tools) {
  const [sub, ...rest] = args
  switch (sub) {
    case 'list':
      return list(rest, tools)
    case 'download':
      return download(rest, tools)
    case 'path':
      return where(rest, tools)
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`)
      return 0
    default:
      throw new tools.UsageError(`${sub === undefined ? 'missing' : `unknown`} models command${sub ? ` ${JSON.stringify(sub)}` : ''}\n\n${USAGE}`)
  }
}

module.exports = { run }
