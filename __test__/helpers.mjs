// Shared by the JS tests: the built addon, the provisioned whisper.cpp and
// model, the speech clips, and a look at this process's child processes.
import { createRequire } from 'node:module'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FIXTURES, JFK_WAV, JFK_MP3, TINY_EN, WHISPER_CLI, ROOT } from '../scripts/paths.mjs'

export const { PersistentWhisperEngine } = createRequire(import.meta.url)('../index.js')
export { FIXTURES, JFK_WAV, JFK_MP3, TINY_EN, WHISPER_CLI, ROOT }

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
