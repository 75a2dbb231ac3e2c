// Shared by the JS tests: the built addon, the provisioned whisper.cpp and
// model, the speech clips, and a look at this process's child processes.
import { createRequire } from 'node:module'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BASE, FIXTURES, JFK_WAV, JFK_MP3, TINY_EN, ROOT } from '../scripts/paths.mjs'
import { wav } from '../scripts/wav.mjs'

/** The package, as `require('persistent-whisper')` gives it. */
import { isGone } from './processes.mjs'
export const pw = createRequire(import.meta.url)('..')
export const { PersistentWhisperEngine } = pw
export { BASE, FIXTURES, JFK_WAV, JFK_MP3, TINY_EN, ROOT }

/** The whisper-cli and whisper-server the engine runs here (this checkout's build for this CPU). */
export const WHISPER_CLI = (await pw.locateWhisper('whisper-cli')).path
export const WHISPER_SERVER = (await pw.locateWhisper('whisper-server')).path

/** Every JS test of the engine runs against every backend. */
export const BACKENDS = ['cli', 'server', 'worker']

/** The process name (as /proc shows it: 15 characters at most) of a backend's whisper workers. */
export const processName = (backend) =>
  ({ cli: 'whisper-cli', server: 'whisper-server', worker: 'persistent-whis' })[backend]

const manifest = JSON.parse(readFileSync(join(FIXTURES, 'clips.json'), 'utf8'))

/** Each speech clip with its path and the phrases a correct transcript contains. */
export const clips = [
  ...manifest.clips.map((c) => ({ ...c, path: join(FIXTURES, c.file) })),
  { file: 'jfk.wav', path: JFK_WAV, keyPhrases: ['ask not what your country can do for you'] },
]

export const normalize = (text) => text.toLowerCase().replace(/[^a-z0-9' ]+/g, ' ').replace(/\s+/g, ' ').trim()

export function missingPhrases(text, keyPhrases) {
  const said = normalize(text)
  return keyPhrases.filter((p) => !said.includes(normalize(p)))
}

/** Processes whose parent is this Node process, by command name (Linux /proc). */
export function childProcesses(name) {
  if (!existsSync('/proc/self/stat')) return null
  const found = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let stat
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
    } catch {
      continue // exited while we looked
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(ppid) === process.pid && comm === name && state !== 'Z') found.push(Number(entry))
  }
  return found
}

export function newEngine(options = {}) {
  return new PersistentWhisperEngine({ modelPath: TINY_EN, logLevel: 'silent', ...options })
}

/** Rejection with its code, for assert.rejects. */
export const withCode = (code) => (err) => {
  if (!(err instanceof Error)) throw new Error(`expected an Error, got ${err}`)
  if (err.code !== code) throw new Error(`expected code ${code}, got ${err.code}: ${err.message}`)
  return true
}

/** Polls `check` until it returns a truthy value (or fails after `ms`). */
export async function waitFor(what, check, ms = 30_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** Whether a process has ended: portable, see processes.mjs. */
export { isGone }

/** Gates a test that reads /proc (a process's argv, CPU time, children): Linux only. */
export const LINUX_ONLY = { skip: process.platform !== 'linux' && 'reads /proc, which only Linux has' }

/** Gates a test that runs the FAKE programs below: shell scripts (#!/bin/sh), which Windows cannot start. */
export const FAKES_RUN = { skip: process.platform === 'win32' && 'the FAKE programs are shell scripts' }

/** A process's argv (Linux /proc). */
export function commandLine(pid) {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
}

/** The FAKE whisper binaries, for fault injection only (tests/fake-whisper/). */
export const FAKE_WHISPER_CLI = join(ROOT, 'tests', 'fake-whisper', 'fake-whisper-cli')
export const FAKE_WHISPER_SERVER = join(ROOT, 'tests', 'fake-whisper', 'fake-whisper-server')
export const FAKE_WORKER = join(ROOT, 'tests', 'fake-whisper', 'fake-persistent-whisper-worker')

/** The 44-byte-header WAV parts of a clip: { header, data }. */
export function wavParts(path) {
  const bytes = readFileSync(path)
  const at = bytes.indexOf('data', 12, 'latin1')
  return { header: bytes.subarray(0, at + 8), data: bytes.subarray(at + 8) }
}

/** A 16 kHz mono 16-bit WAV file's samples as whisper takes them: Float32Array in [-1, 1). */
export function samplesOf(path) {
  const { header, data } = wavParts(path)
  if (header.readUInt16LE(22) !== 1 || header.readUInt32LE(24) !== 16000 || header.readUInt16LE(34) !== 16) {
    throw new Error(`${path} is not 16 kHz mono 16-bit PCM`)
  }
  const pcm = new Int16Array(data.buffer.slice(data.byteOffset, data.byteOffset + (data.length & ~1)))
  return Float32Array.from(pcm, (v) => v / 32768)
}

/** One WAV holding `times` copies of the clips' speech: a long file of real speech. */
export function longSpeech(times) {
  const parts = clips.map((c) => wavParts(c.path).data)
  return wav(Buffer.concat(Array.from({ length: times }, () => parts).flat()))
}

export { wav }

/** CPU time a process has used, in clock ticks (Linux /proc). */
export function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

/** Resolves once the process has used CPU time: proof that it works on something. */
export async function working(pid) {
  const before = cpuTicks(pid)
  await waitFor(`pid ${pid} to work`, () => cpuTicks(pid) > before + 2)
}
