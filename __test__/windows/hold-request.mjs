// Run by __test__/windows.test.mjs in node.exe under Wine, which then kills
// this node.exe with SIGKILL (no shutdown(), no exit handler): an engine of
// one backend with a request in flight, and, with --control, a whisper-cli
// started outside the engine and outside every job object (detached), which
// must outlive node.exe, proving that the test sees a survivor when there is
// one. Writes { pids, control } to the file named last, then waits.
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { TINY_EN, longSpeech, newEngine, pw, scratch, waitFor } from './common.mjs'

const [backend, readyFile, flag] = process.argv.slice(2)
const dir = scratch(`hold ${backend}`)
const long = join(dir, 'long speech.wav')
writeFileSync(long, longSpeech(4))

const engine = newEngine({ backend, poolSize: 1 })
await engine.initialize()
engine.transcribe(long).catch(() => {})
const pid = await waitFor('the request to run', async () => {
  const [worker] = await engine.getWorkerStatuses()
  return worker?.state === 'processing' && worker.pid
})
let control = null
if (flag === '--control') {
  const cli = (await pw.locateWhisper('whisper-cli')).path
  // An ASCII name: whisper-cli itself opens files by narrow names.
  const plain = mkdtempSync(join('C:\\', 'pw-control-'))
  writeFileSync(join(plain, 'long.wav'), longSpeech(4))
  const child = spawn(cli, ['-m', TINY_EN, '-f', join(plain, 'long.wav'), '-t', '1', '-np'], { detached: true, stdio: 'ignore' })
  child.unref()
  control = child.pid
}
// Whole or not at all: the Linux side reads it as soon as it exists.
writeFileSync(`${readyFile}.tmp`, JSON.stringify({ pids: [pid], control }))
renameSync(`${readyFile}.tmp`, readyFile)
setInterval(() => {}, 60_000)
