// OpenMP against ggml's own thread pool (`npm run bench -- --only threading`):
// the CPU variant this machine runs, built both ways with the packaging
// toolchain (scripts/threading-build.mjs), measured in interleaved rounds:
//   - batch: the engine's defaults (worker backend, a thread budget that
//     follows the load), every clip of the workload submitted at once;
//   - dictation: one clip at a time into an idle engine (every core on it);
//   - one whisper-cli on all cores, process start to exit.
// The OpenMP build runs as the engine starts it (a waiting thread spins
// about 0.1 ms, then sleeps) and with no spin at all. Prints medians and
// each row's ratio to the ggml pool's (below 1: faster).
import { availableParallelism } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { createRequire } from 'node:module'
import { FIXTURES } from '../scripts/paths.mjs'
import { hostTarget } from '../scripts/targets.mjs'
import { buildThreadingPair } from '../scripts/threading-build.mjs'
import { median, percentile } from './measure.mjs'

const WORKER = 'persistent-whisper-worker'

/**
 * The rows: which build, and how OpenMP's threads wait (set here for the
 * engine and whisper-cli alike; the ggml pool ignores them).
 */
const CONFIGS = {
  'ggml-pool': { build: 'ggml-pool', env: {} },
  // The engine's default (src/process/mod.rs): spin about 0.1 ms, then sleep.
  openmp: { build: 'openmp', env: { OMP_WAIT_POLICY: 'passive', GOMP_SPINCOUNT: '10000' } },
  // Sleep at once: the engine's default before it spun.
  'openmp-no-spin': { build: 'openmp', env: { OMP_WAIT_POLICY: 'passive', GOMP_SPINCOUNT: '0' } },
}

export async function threading(files, opts, runner, progress) {
  const shipped = await createRequire(import.meta.url)('..').locateWhisper(WORKER)
  const variant = basename(dirname(shipped.path))
  const dirs = buildThreadingPair(hostTarget(), variant)
  const kitchen = join(FIXTURES, 'kitchen.wav')
  const names = Object.keys(CONFIGS)
  const runs = Object.fromEntries(names.map((n) => [n, { batch: [], dictation: [], cli: [] }]))
  for (let round = 0; round < opts.rounds; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + round) % names.length]
      const { build, env } = CONFIGS[name]
      const custom = { model: opts.model, backend: 'worker', poolSize: opts.poolSize, workerPath: join(dirs[build], WORKER) }
      progress(`threading round ${round + 1}/${opts.rounds}: ${name}, batch of ${files.length}`)
      runs[name].batch.push((await runner({ scenario: 'batch', custom, files, env })).makespanMs)
      progress(`threading round ${round + 1}/${opts.rounds}: ${name}, dictation`)
      runs[name].dictation.push(...(await runner({ scenario: 'sequential', custom, files: Array(opts.dictation).fill(kitchen), env })).latenciesMs)
      progress(`threading round ${round + 1}/${opts.rounds}: ${name}, whisper-cli`)
      const program = join(dirs[build], 'whisper-cli')
      runs[name].cli.push(...(await runner({ scenario: 'program', program, model: opts.model, files: [kitchen], threads: availableParallelism(), env })).ms)
    }
  }
  const rows = Object.fromEntries(
    names.map((n) => [n, { batchMs: median(runs[n].batch), dictationP50Ms: percentile(runs[n].dictation, 50), cliMs: median(runs[n].cli), runs: runs[n] }]),
  )
  const pool = rows['ggml-pool']
  for (const row of Object.values(rows)) {
    row.vsPool = { batch: row.batchMs / pool.batchMs, dictation: row.dictationP50Ms / pool.dictationP50Ms, cli: row.cliMs / pool.cliMs }
  }
  return { variant, model: basename(opts.model), rounds: opts.rounds, rows }
}
