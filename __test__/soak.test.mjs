// Soak: 500 requests with random injected faults and random aborts through
// the FAKE whisper binaries (fault injection only; tests/fake-whisper/).
// Every Promise settles, the counts add up, and file descriptors, child
// processes and memory return to where they started.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { childProcesses, FAKE_WHISPER_CLI, LINUX_ONLY, FAKE_WHISPER_SERVER, FAKE_WORKER, PersistentWhisperEngine, TINY_EN, waitFor } from './helpers.mjs'

const REQUESTS = 500

/** Deterministic pseudo-random numbers, so a failure can be replayed. */
function random(seed) {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed / 2 ** 31
  }
}

const DIRECTIVES = [
  [0.55, 'ok fine'],
  [0.15, 'work 0.02 fine'],
  [0.06, 'crash'],
  [0.06, 'garbage'],
  [0.06, 'unreadable'],
  [0.04, 'die-mid-output'],
  [0.08, 'hang'],
]

function scratch() {
  const dir = mkdtempSync(join(tmpdir(), 'pw-soak-'))
  // The engine checks a model's header; whisper is fake, so the header is all it needs.
  writeFileSync(join(dir, 'model.bin'), readFileSync(TINY_EN).subarray(0, 48))
  const files = DIRECTIVES.map(([, directive], i) => {
    const p = join(dir, `job-${i}.wav`)
    writeFileSync(p, `${directive}\n`)
    return p
  })
  return { dir, files }
}

function pick(rand, files) {
  let x = rand()
  for (const [i, [share]] of DIRECTIVES.entries()) {
    if ((x -= share) < 0) return files[i]
  }
  return files[0]
}

const openFds = () => readdirSync('/proc/self/fd').length
const fakeProcesses = () => [
  ...(childProcesses('fake-whisper-cl') ?? []),
  ...(childProcesses('node') ?? []),
]

async function run(backend, s, seed) {
  const rand = random(seed)
  const engine = new PersistentWhisperEngine({
    modelPath: join(s.dir, 'model.bin'),
    backend,
    whisperPath: FAKE_WHISPER_CLI,
    serverPath: FAKE_WHISPER_SERVER,
    workerPath: FAKE_WORKER,
    poolSize: 4,
    processes: 2,
    timeout: 300,
    maxQueueSize: REQUESTS,
    logLevel: 'silent',
  })
  await engine.initialize()
  const pending = []
  for (let i = 0; i < REQUESTS; i++) {
    const controller = new AbortController()
    pending.push(engine.transcribe(pick(rand, s.files), { signal: controller.signal }).then(() => 'ok', (e) => e.code))
    if (rand() < 0.1) setTimeout(() => controller.abort(), rand() * 400)
  }
  const outcomes = await Promise.all(pending)
  const stats = (await engine.getStatus()).poolStats
  await engine.shutdown()
  return { outcomes, stats }
}

for (const backend of ['cli', 'server', 'worker']) {
  // The FAKE programs are shell scripts, and the fds and processes are counted in /proc.
  test(`${backend}: ${REQUESTS} requests with random faults and aborts all settle and leave nothing behind`, { timeout: 600_000, ...LINUX_ONLY }, async (t) => {
    const s = scratch()
    await run(backend, s, 1) // warm up: the runtime's threads and fds exist from here on
    const fds = openFds()
    const children = fakeProcesses().length
    global.gc?.()
    const rss = process.memoryUsage().rss

    const { outcomes, stats } = await run(backend, s, 42)
    assert.equal(outcomes.length, REQUESTS, 'every Promise settled')
    const count = (code) => outcomes.filter((o) => o === code).length
    const completed = count('ok')
    const aborted = count('ERR_ABORTED')
    const failed = REQUESTS - completed - aborted
    assert.ok(completed > 0 && aborted > 0 && failed > 0, `${completed} ok, ${aborted} aborted, ${failed} failed`)
    assert.equal(stats.totalRequestsSubmitted, REQUESTS)
    assert.equal(stats.totalRequestsProcessed, completed)
    assert.equal(stats.totalRequestsAborted, aborted)
    assert.equal(stats.totalRequestsFailed, failed)
    const known = new Set(['ok', 'ERR_ABORTED', 'ERR_WORKER_CRASHED', 'ERR_WHISPER_FAILED', 'ERR_AUDIO_UNREADABLE', 'ERR_TIMEOUT'])
    assert.deepEqual(outcomes.filter((o) => !known.has(o)), [])

    // A leak keeps the count above the baseline; sockets and pipes of the
    // warm-up may still be closing when the baseline is taken, so the count
    // may also end below it.
    await waitFor(`open file descriptors back to ${fds} (${openFds()} now)`, () => openFds() <= fds, 5_000)
    assert.equal(fakeProcesses().length, children, 'child processes')
    global.gc?.()
    const grown = process.memoryUsage().rss - rss
    assert.ok(grown < 48 * 1024 * 1024, `RSS grew ${(grown / 1048576).toFixed(1)} MB`)
    t.diagnostic(`${completed} ok, ${aborted} aborted, ${failed} failed; replaced ${stats.workersReplaced}; RSS ${(grown / 1048576).toFixed(1)} MB`)
  })
}
