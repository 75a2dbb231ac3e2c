// Shared by the JS tests: the built addon, the provisioned whisper.cpp and
// model, the speech clips, and a look at this process's child processes.
import { createRequire } from 'node:module'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BASE, FIXTURES, JFK_WAV, JFK_MP3, TINY_EN, WHISPER_CLI, ROOT } from '../scripts/paths.mjs'

export const { PersistentWhisperEngine } = createRequire(import.meta.url)('../index.js')
export { BASE, FIXTURES, JFK_WAV, JFK_MP3, TINY_EN, WHISPER_CLI, ROOT }

/** Every JS test of the engine runs against both backends. */
export const BACKENDS = ['cli', 'server']

/** The process name of a backend's whisper workers. */
export const processName = (backend) => (backend === 'server' ? 'whisper-server' : 'whisper-cli')

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

/** True when no process with this pid is running. */
export function isGone(pid) {
  try {
    process.kill(pid, 0)
  } catch (err) {
    return err.code === 'ESRCH'
  }
  return false
}

/** A process's argv (Linux /proc). */
export function commandLine(pid) {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
}
