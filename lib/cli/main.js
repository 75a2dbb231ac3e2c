'use strict'
// `persistent-whisper`, the command line: transcribe files with a live view
// of the pool, and manage models. Arguments are parsed strictly (node:util
// parseArgs): an unknown flag is refused with a message, never ignored.
const { parseArgs } = require('node:util')
const { printable } = require('./format')

const USAGE = `usage: persistent-whisper <command> [options]

commands:
  transcribe <files...>    transcribe audio files with a pool of whisper workers
  listen [file|-]          live dictation from a microphone's PCM on stdin, or a WAV
  models list              the catalogue, with what is downloaded
  models download <name>   download a catalogue model (or --url URL --sha256 HEX)
  models path <name>       where a catalogue model is (or would be) stored

Run persistent-whisper <command> --help for its options.`

/** An error the user caused: printed without a stack, exit code 2. */
class UsageError extends Error {}

/** Parses `args` for a command; --help prints `help` and returns null. */
function parse(args, options, help, { positionals = true } = {}) {
  let parsed
  try {
    parsed = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: positionals, strict: true })
  } catch (err) {
    const unknown = /Unknown option '([^']+)'/.exec(err.message)?.[1]
    throw new UsageError(unknown ? `unknown option ${unknown}\n\n${help}` : `${err.message}\n\n${help}`)
  }
  if (parsed.values.help) {
    process.stdout.write(`${help}\n`)
    return null
  }
  return parsed
}

/** A whole number from a flag, in range. */
function integer(flag, value, min, max) {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${flag} must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`)
  return n
}

async function main(argv) {
  const [command, ...rest] = argv
  switch (command) {
    case 'transcribe':
      return require('./transcribe').run(rest, { parse, integer, UsageError })
    case 'listen':
      return require('./listen').run(rest, { parse, integer, UsageError })
    case 'models':
      return require('./models').run(rest, { parse, UsageError })
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(`${USAGE}\n`)
      return 0
    case '--version':
      process.stdout.write(`${require('../../package.json').version}\n`)
      return 0
    case undefined:
      throw new UsageError(USAGE)
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`)
  }
}

/** Runs the CLI and exits with its code. */
function cli(argv = process.argv.slice(2)) {
  main(argv).then(
    (code) => {
      process.exitCode = code ?? 0
    },
    (err) => {
      // Messages may quote a path or URL the user gave: no control character reaches the terminal.
      if (err instanceof UsageError) {
        process.stderr.write(`persistent-whisper: ${printable(err.message, { newlines: true })}\n`)
        process.exitCode = 2
      } else {
        process.stderr.write(`persistent-whisper: ${err.code ? `${err.code}: ` : ''}${printable(err.message)}\n`)
        process.exitCode = 1
      }
    },
  )
}

module.exports = { cli, main, UsageError }
