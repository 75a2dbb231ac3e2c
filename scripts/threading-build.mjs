// The benchmark's threading comparison (`npm run bench -- --only threading`):
// one CPU variant of whisper-cli, whisper-server and the worker program, built
// twice with the packaging toolchain, once on OpenMP (GCC's libgomp, linked
// statically) and once on ggml's own thread pool, so that the two can be
// measured against each other on the machine at hand. Each build lands in
// .whisper/threading/<variant>/<openmp|ggml-pool>/ and is rebuilt only when
// its inputs change.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as P from './paths.mjs'
import { contentOf, log, stamped } from './provision.mjs'
import { TARGETS, VARIANTS } from './targets.mjs'
import { COMMON_FLAGS, buildWorker, cmakeBuild, toolchainFor, whisperSource } from './whisper-build.mjs'
import { seriesKey } from './whisper-patches.mjs'

export const THREADINGS = { openmp: 'ON', 'ggml-pool': 'OFF' }

/** { openmp: dir, 'ggml-pool': dir }: the two builds of `variant` for `target`. */
export function buildThreadingPair(target, variant) {
  const src = whisperSource()
  const toolchain = toolchainFor(target)
  const targetFlags = TARGETS[target].cmake.filter((f) => !f.startsWith('-DGGML_OPENMP='))
  const dirs = {}
  for (const [name, openmp] of Object.entries(THREADINGS)) {
    const flags = ['-DGGML_NATIVE=OFF', ...targetFlags, ...VARIANTS[variant], `-DGGML_OPENMP=${openmp}`, ...toolchain.cmake]
    const out = join(P.HOME, 'threading', variant, name)
    const build = join(P.HOME, 'build', target, `threading-${variant}-${name}`)
    const inputs = [P.WHISPER_SOURCE, COMMON_FLAGS, flags, toolchain.id, contentOf(new URL(import.meta.url)), seriesKey(false)]
    stamped(out, inputs, () => {
      log(`building whisper.cpp for ${target} ${variant} on ${name}, for the benchmark`)
      cmakeBuild(src, build, flags, out, target)
    })
    // CMake only warns when it finds no OpenMP: a pool build named openmp would measure nothing.
    if (linksOpenMP(join(out, 'whisper-cli')) !== (openmp === 'ON')) throw new Error(`${out}: whisper-cli is not built ${openmp === 'ON' ? 'with' : 'without'} OpenMP`)
    buildWorker(target, `${variant} ${name}`, toolchain, out, inputs, { build })
    dirs[name] = out
  }
  return dirs
}

/** Whether a program links GCC's OpenMP runtime: libgomp reads OMP_WAIT_POLICY, ggml alone never names it. */
export const linksOpenMP = (program) => readFileSync(program).includes('OMP_WAIT_POLICY')
