'use strict'
// Where `transcribe` writes each result, decided and checked before anything
// runs. Refused with a usage error (exit 2), so that no data is lost:
// - an input that is not a regular file (a FIFO would block the command,
//   Ctrl-C included; a folder or device is no audio). It is looked at with
//   stat, which opens nothing;
// - two inputs whose results would have the same name (a/x.wav and b/x.wav
//   with --output-dir, x.wav and x.mp3 side by side, one file given twice):
//   the second would silently replace the first;
// - a result that would be written over an input (an audio file named
//   stella.txt, with the default txt format), by name or by inode (a hard
//   link or symlink to it).
// A missing file is left to the engine: it fails alone (ERR_AUDIO_NOT_FOUND).
const fs = require('node:fs')
const path = require('node:path')
const { printable } = require('./format')

/** Folders and names compare without case where the file system ignores it. */
const caseless = process.platform === 'darwin' || process.platform === 'win32'
const key = (file) => (caseless ? path.resolve(file).toLowerCase() : path.resolve(file))

function kindOf(stat) {
  if (stat.isFIFO()) return 'a FIFO'
  if (stat.isDirectory()) return 'a folder'
  if (stat.isSocket()) return 'a socket'
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device'
  return 'not a plain file'
}

/** The result file for `file`: beside it, or in `outputDir`. */
function outputPath(file, format, outputDir) {
  const base = `${path.basename(file, path.extname(file))}.${format}`
  return path.join(outputDir ?? path.dirname(path.resolve(file)), base)
}

/**
 * Map of input -> result file (empty when the one result goes to stdout).
 * Throws `UsageError` for anything listed above.
 */
function planOutputs(files, { format, outputDir, toStdout, UsageError }) {
  const inputs = files.map((file) => {
    let stat
    try {
      stat = fs.statSync(file)
    } catch {
      return { file } // missing or unreadable: the engine says which
    }
    if (!stat.isFile()) throw new UsageError(`${printable(file)} is not a regular file (${kindOf(stat)}): give audio files`)
    return { file, stat }
  })
  const targets = new Map()
  if (toStdout) return targets
  const byTarget = new Map()
  for (const { file } of inputs) {
    const target = outputPath(file, format, outputDir)
    const other = byTarget.get(key(target))
    if (other !== undefined && key(other) === key(file)) throw new UsageError(`${printable(file)} is given twice: its result would be written twice to ${printable(target)}`)
    if (other !== undefined) {
      throw new UsageError(
        `${printable(other)} and ${printable(file)} would both be written to ${printable(target)}, one over the other: transcribe them in separate runs (or with different --output-dir), or rename one`,
      )
    }
    byTarget.set(key(target), file)
    targets.set(file, target)
  }
  for (const [file, target] of targets) {
    let existing
    try {
      existing = fs.statSync(target)
    } catch {
      // Not there yet: compared by name below.
    }
    const sameFile = (i) => existing && i.stat && existing.ino !== 0 && i.stat.ino === existing.ino && i.stat.dev === existing.dev
    const input = inputs.find((i) => key(i.file) === key(target) || sameFile(i))
    if (input) {
      const over = input.file === file ? 'the input itself' : `the input ${printable(input.file)}`
      throw new UsageError(`the result of ${printable(file)} (${printable(target)}) would be written over ${over}: use --output-dir DIR or another --format, or rename the audio file`)
    }
  }
  return targets
}

module.exports = { planOutputs }
