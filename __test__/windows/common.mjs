// Shared by the Windows suite: files in this folder run in Node's Windows
// build (node.exe) under Wine, started by __test__/windows.test.mjs, with
// this checkout's Windows addon (win32-x64-gnu) and the Windows programs of
// .whisper/targets/win32-x64-gnu/. They use no Linux tool and no /proc.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { wav } from '../../scripts/wav.mjs'

if (process.platform !== 'win32') throw new Error('the Windows suite runs in node.exe under Wine: node --test __test__/windows.test.mjs')

/** The package, as `require('persistent-whisper')` gives it. */
export const pw = createRequire(import.meta.url)('../..')
export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const TINY_EN = join(ROOT, '.whisper', 'models', 'ggml-tiny.en.bin')
export const FIXTURES = join(ROOT, '__test__', 'fixtures')
export const BACKENDS = ['cli', 'server', 'worker']

/** Test options for a whisper run under Wine on 2 shared cores. */
export const SLOW = { timeout: 600_000 }

/** The Windows programs of each backend. */
export const PROGRAM = { cli: 'whisper-cli', server: 'whisper-server', worker: 'persistent-whisper-worker' }

const manifest = JSON.parse(readFileSync(join(FIXTURES, 'clips.json'), 'utf8'))
export const clips = manifest.clips.map((c) => ({ ...c, path: join(FIXTURES, c.file) }))

/**
 * Letters outside every ANSI code page but UTF-8 (Cyrillic and Japanese in
 * one name): a program that opens files with narrow fopen() fails on them
 * on a real Windows, and under Wine.
 */
export const WIDE_NAME = 'журнал 日本語 ü'

/** A fresh folder on drive C: whose path has spaces and letters outside the ANSI code page. */
export function scratch(tag) {
  const base = join('C:\\', 'pw tests')
  mkdirSync(base, { recursive: true })
  const dir = mkdtempSync(join(base, `${tag} ${WIDE_NAME} `))
  return dir
}

/** A clip copied into `dir` under a wide name with spaces. */
export function wideCopy(clip, dir) {
  const to = join(dir, `clip ${WIDE_NAME} ${clip.file}`)
  copyFileSync(clip.path, to)
  return to
}

export const normalize = (text) => text.toLowerCase().replace(/[^a-z0-9' ]+/g, ' ').replace(/\s+/g, ' ').trim()

export function missingPhrases(text, keyPhrases) {
  const said = normalize(text)
  return keyPhrases.filter((p) => !said.includes(normalize(p)))
}

export function newEngine(options = {}) {
  return new pw.PersistentWhisperEngine({ modelPath: TINY_EN, logLevel: 'silent', threads: 2, ...options })
}

/** Rejection with its code, for assert.rejects. */
export const withCode = (code) => (err) => {
  if (!(err instanceof Error)) throw new Error(`expected an Error, got ${err}`)
  if (err.code !== code) throw new Error(`expected code ${code}, got ${err.code}: ${err.message}`)
  return true
}

/** Polls `check` until it returns a truthy value (or fails after `ms`). */
export async function waitFor(what, check, ms = 60_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** Whether a Windows process runs (libuv asks OpenProcess and its exit code). */
export function isRunning(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    if (err.code === 'ESRCH') return false
    throw err
  }
}

/** The 16 kHz mono 16-bit WAV's samples as whisper takes them. */
export function samplesOf(path) {
  const bytes = readFileSync(path)
  const at = bytes.indexOf('data', 12, 'latin1')
  const data = bytes.subarray(at + 8)
  const pcm = new Int16Array(data.buffer.slice(data.byteOffset, data.byteOffset + (data.length & ~1)))
  return Float32Array.from(pcm, (v) => v / 32768)
}

/** `times` copies of every clip's speech as one WAV: long enough to abort or time out. */
export function longSpeech(times) {
  const parts = clips.map((c) => {
    const bytes = readFileSync(c.path)
    return bytes.subarray(bytes.indexOf('data', 12, 'latin1') + 8)
  })
  return wav(Buffer.concat(Array.from({ length: times }, () => parts).flat()))
}
