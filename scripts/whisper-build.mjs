// Builds whisper.cpp 1.9.1's programs for a platform package: one build per
// CPU variant (scripts/targets.mjs), portable (no -march=native), into
// .whisper/targets/<target>/bin/<variant>/. Each variant is rebuilt only when
// its inputs change. buildNative() makes the -march=native build that the
// benchmark compares against; buildStock() the worker on stock whisper.cpp,
// which the tests run to prove that the patch series is optional.
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { availableParallelism, homedir } from 'node:os'
import { join } from 'node:path'
import * as P from './paths.mjs'
import { contentOf, log, npmTarball, run, stamped } from './provision.mjs'
import { GPU_VARIANTS, PROGRAMS, TARGETS, VARIANTS, WORKER, exe, hostTarget } from './targets.mjs'
import { gpuSdk, gpuVariants } from './gpu-builds.mjs'
import { isLinuxGnu, linuxToolchain } from './toolchain.mjs'
import { windowsToolchain } from './windows-toolchain.mjs'
import { untar } from './untar.mjs'
import { applySeries, hasSeries, seriesKey } from './whisper-patches.mjs'

/** Whether the environment asks for stock whisper.cpp (the patch series off). */
const stockByDefault = () => ['off', '0', 'false'].includes(String(process.env.PW_WHISPER_PATCHES ?? '').toLowerCase())

/**
 * The whisper.cpp source tree, unpacked from its npm package, with this
 * project's patch series applied (patches/whisper.cpp), or without it for
 * `stock`. Unpacked again whenever the series changes.
 */
export function whisperSource({ stock = stockByDefault() } = {}) {
  const src = join(P.HOME, 'src', `whisper.cpp-${P.WHISPER_SOURCE.version}${stock ? '-stock' : ''}`)
  if (!existsSync(join(src, 'CMakeLists.txt')) || !hasSeries(src, stock)) {
    unpackWhisper(src)
    applySeries(src, stock)
  }
  return src
}

/**
 * The folder `tree` of the tarball `tgz`, unpacked as `dest` (replacing it),
 * by Node alone (scripts/untar.mjs): on Windows the `tar` a bash finds first
 * may be Git's GNU tar, which reads `D:\...` as a remote host.
 */
export function unpackTree(tgz, tree, dest) {
  const unpack = `${dest}.unpack`
  rmSync(unpack, { recursive: true, force: true })
  mkdirSync(unpack, { recursive: true })
  untar(tgz, unpack, { only: tree })
  rmSync(dest, { recursive: true, force: true })
  renameSync(join(unpack, tree), dest)
  rmSync(unpack, { recursive: true, force: true })
}

function unpackWhisper(src) {
  const tgz = npmTarball(P.WHISPER_SOURCE.spec, P.WHISPER_SOURCE.tarball, P.WHISPER_SOURCE.sha256)
  log(`unpacking whisper.cpp ${P.WHISPER_SOURCE.version}`)
  unpackTree(tgz, P.WHISPER_SOURCE.treeInTarball, src)
}

export const COMMON_FLAGS = [
  '-DCMAKE_BUILD_TYPE=Release',
  '-DBUILD_SHARED_LIBS=OFF',
  '-DWHISPER_BUILD_TESTS=OFF',
  '-DWHISPER_BUILD_EXAMPLES=ON',
  '-DWHISPER_SDL2=OFF',
  '-DWHISPER_CURL=OFF',
]

/**
 * ccache, where installed, compiles what the CPU variants share (whisper,
 * ggml's base, the programs) once: only ggml's CPU backend differs. Its
 * cache lives outside the checkout (a fresh clone reuses it), unless
 * CCACHE_DIR says where.
 */
function ccache() {
  const found = spawnSync('ccache', ['--version'], { stdio: 'ignore' }).status === 0
  const dir = process.env.CCACHE_DIR || join(homedir(), '.cache', 'persistent-whisper', 'ccache')
  return {
    flags: [`-DGGML_CCACHE=${found ? 'ON' : 'OFF'}`],
    env: { ...process.env, CCACHE_DIR: dir, CCACHE_BASEDIR: P.HOME, CCACHE_NOHASHDIR: '1' },
  }
}

/**
 * Copies a built program into place through a new file and a rename, so a
 * copy of it that is running (a test's, a benchmark's) keeps running.
 */
function install(from, to) {
  const temp = `${to}.new`
  copyFileSync(from, temp)
  renameSync(temp, to)
}

/** cmake configure + build of the programs, then copies them to `out`. */
export function cmakeBuild(src, build, flags, out, target) {
  const cache = ccache()
  run('cmake', ['-S', src, '-B', build, ...COMMON_FLAGS, ...cache.flags, ...flags], { env: cache.env })
  run('cmake', ['--build', build, '--config', 'Release', '-j', String(availableParallelism()), '--target', ...PROGRAMS], { env: cache.env })
  mkdirSync(out, { recursive: true })
  for (const name of PROGRAMS) {
    const file = exe(target, name)
    const built = [join(build, 'bin', file), join(build, 'bin', 'Release', file)].find(existsSync)
    install(built, join(out, file))
  }
}

/** Where a target's programs land: bin/<variant>/ as in its platform package. */
export const targetDir = (target) => join(P.HOME, 'targets', target)
export const variantDir = (target, variant) => join(targetDir(target), 'bin', variant)
export const buildDir = (target, variant) => join(P.HOME, 'build', target, variant)
/** The stock build (no patch series), for the tests. */
export const stockDir = (target) => join(P.HOME, 'stock', target)

/** What the worker program is built from: a change to any of it rebuilds it. */
/** Every file of a source folder, in a stable order: a new module rebuilds too. */
const filesIn = (dir) =>
  readdirSync(join(P.ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name))
    .sort()

export const WORKER_SOURCES = [
  ...['Cargo.lock', 'worker/Cargo.toml', 'worker/build.rs', 'worker-protocol/Cargo.toml'].map((f) => join(P.ROOT, f)),
  ...filesIn('worker/src'),
  ...filesIn('worker-protocol/src'),
]

/**
 * persistent-whisper-worker linked with one variant's whisper.cpp libraries,
 * into `out` beside its whisper-cli. One cargo target folder per target, so
 * the variants share compiled dependencies and differ only in the link.
 */
export function buildWorker(target, variant, toolchain, out, whisperKey, { build = buildDir(target, variant), stock = false } = {}) {
  const file = join(out, exe(target, WORKER))
  const stampDir = join(build, 'worker-stamp')
  if (!existsSync(file)) rmSync(stampDir, { recursive: true, force: true })
  const { triple } = TARGETS[target]
  const inputs = [whisperKey, toolchain.id, contentOf(...WORKER_SOURCES, new URL(import.meta.url))]
  const built = stamped(stampDir, inputs, () => {
    log(`building ${WORKER} for ${target} ${variant}`)
    if (target !== hostTarget()) run('rustup', ['target', 'add', triple])
    const cargoDir = join(P.HOME, 'build', target, 'worker-cargo')
    const env = {
      ...process.env,
      ...(toolchain.env ?? {}),
      PW_WHISPER_BUILD: build,
      PW_WHISPER_SRC: whisperSource({ stock }),
    }
    if (toolchain.cxx) env[`CARGO_TARGET_${triple.toUpperCase().replaceAll('-', '_')}_LINKER`] = toolchain.cxx
    // MSVC: Rust's own code on the static C runtime too, as whisper.cpp's
    // libraries and the shim are (/MT): a mix fails the link, and the
    // dynamic one would need the VC++ runtime installed on users' machines.
    if (triple.endsWith('-msvc')) env[`CARGO_TARGET_${triple.toUpperCase().replaceAll('-', '_')}_RUSTFLAGS`] = '-C target-feature=+crt-static'
    run('cargo', ['build', '--release', '-p', WORKER, '--target', triple, '--target-dir', cargoDir], { env })
    install(join(cargoDir, triple, 'release', exe(target, WORKER)), file)
  })
  if (!built) log(`${WORKER} for ${target} ${variant} already built`)
}

/** The compilers of a target: Linux's glibc 2.17 toolchain, mingw-w64 for win32-x64-gnu, else the system's. */
export function toolchainFor(target) {
  if (isLinuxGnu(target)) return linuxToolchain(target)
  if (target === 'win32-x64-gnu') return windowsToolchain()
  return { id: 'system', cmake: [] }
}

/** Every variant of a target's programs, plus whisper.cpp's license beside them. */
export function buildWhisper(target) {
  const src = whisperSource()
  const toolchain = toolchainFor(target)
  for (const variant of TARGETS[target].variants) {
    const flags = ['-DGGML_NATIVE=OFF', ...TARGETS[target].cmake, ...VARIANTS[variant], ...toolchain.cmake]
    const out = variantDir(target, variant)
    const inputs = [P.WHISPER_SOURCE, COMMON_FLAGS, flags, toolchain.id, contentOf(new URL(import.meta.url)), seriesKey(false)]
    const built = stamped(out, inputs, () => {
      log(`building whisper.cpp ${P.WHISPER_SOURCE.version} for ${target} ${variant} (minutes on 2 cores)`)
      rmSync(out, { recursive: true, force: true })
      cmakeBuild(src, buildDir(target, variant), flags, out, target)
    })
    if (!built) log(`whisper.cpp for ${target} ${variant} already built`)
    buildWorker(target, variant, toolchain, out, inputs)
  }
  for (const gpu of gpuVariants(target)) buildGpu(target, gpu, src, toolchain)
  copyFileSync(join(src, 'LICENSE'), join(targetDir(target), 'LICENSE.whisper.cpp'))
  return targetDir(target)
}

/**
 * A GPU variant (bin/vulkan/ ...): the programs and the worker on a CPU
 * variant's flags plus the GPU backend, in a folder of their own. Rebuilt
 * only when its inputs change: the Vulkan shaders take most of the time
 * (about 10 minutes on 2 cores), and their build folder stays in .whisper/
 * for the next change, ccache (outside the checkout) for the C++.
 */
function buildGpu(target, gpu, src, targetToolchain) {
  const sdk = gpuSdk(gpu, target, targetToolchain)
  const toolchain = sdk.systemToolchain ? { id: 'system', cmake: [] } : targetToolchain
  const flags = ['-DGGML_NATIVE=OFF', ...TARGETS[target].cmake, ...VARIANTS[GPU_VARIANTS[gpu].cpu], ...sdk.cmake, ...toolchain.cmake]
  const out = variantDir(target, gpu)
  const inputs = [P.WHISPER_SOURCE, COMMON_FLAGS, flags, toolchain.id, sdk.id, contentOf(new URL(import.meta.url)), seriesKey(false)]
  const started = Date.now()
  const built = stamped(out, inputs, () => {
    log(`building whisper.cpp ${P.WHISPER_SOURCE.version} for ${target} ${gpu} (its shaders take about 10 minutes on 2 cores)`)
    rmSync(out, { recursive: true, force: true })
    cmakeBuild(src, buildDir(target, gpu), flags, out, target)
  })
  if (built) log(`whisper.cpp for ${target} ${gpu} built in ${((Date.now() - started) / 60000).toFixed(1)} min`)
  else log(`whisper.cpp for ${target} ${gpu} already built`)
  buildWorker(target, gpu, toolchain, out, inputs)
}

/**
 * whisper-cli, whisper-server and the worker program for this platform's
 * baseline CPU variant, built from stock whisper.cpp (no patch series), in
 * .whisper/stock/<target>/: the tests prove the worker runs there too.
 */
export function buildStock(target = hostTarget()) {
  const src = whisperSource({ stock: true })
  const toolchain = toolchainFor(target)
  const variant = TARGETS[target].variants[0]
  const flags = ['-DGGML_NATIVE=OFF', ...TARGETS[target].cmake, ...VARIANTS[variant], ...toolchain.cmake]
  const out = join(stockDir(target), 'bin', variant)
  const build = join(P.HOME, 'build', target, `${variant}-stock`)
  const inputs = [P.WHISPER_SOURCE, COMMON_FLAGS, flags, toolchain.id, contentOf(new URL(import.meta.url)), seriesKey(true)]
  const built = stamped(out, inputs, () => {
    log(`building stock whisper.cpp ${P.WHISPER_SOURCE.version} for ${target} ${variant}`)
    rmSync(out, { recursive: true, force: true })
    cmakeBuild(src, build, flags, out, target)
  })
  if (!built) log(`stock whisper.cpp for ${target} ${variant} already built`)
  buildWorker(target, variant, toolchain, out, inputs, { build, stock: true })
  return out
}

/** whisper-cli and whisper-server built for this very CPU (-march=native): the benchmark's reference. */
export function buildNative() {
  const src = whisperSource()
  const out = join(P.HOME, 'native', 'bin')
  stamped(out, [P.WHISPER_SOURCE, COMMON_FLAGS, 'native', seriesKey(false)], () => {
    log('building whisper.cpp for this CPU (-march=native), for the benchmark')
    cmakeBuild(src, join(P.HOME, 'build', 'native'), ['-DGGML_NATIVE=ON'], out, process.platform === 'win32' ? 'win32' : '')
  })
  return out
}

