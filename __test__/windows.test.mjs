// The Windows build, run for real: the suite in __test__/windows/ runs in
// Node's own Windows build (node.exe) under Wine with this checkout's
// Windows addon and programs (win32-x64-gnu: mingw-w64, built by
// scripts/prepare.mjs --cross, which npm test runs). Here, on the Linux
// side: each file of that suite, and what only Linux can see, such as which
// Windows processes outlive a node.exe killed with SIGKILL.
import assert from 'node:assert/strict'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ROOT, HOME } from '../scripts/paths.mjs'
import { TARGETS } from '../scripts/targets.mjs'
import { spawnSync } from 'node:child_process'
import { MINGW_CC } from '../scripts/windows-toolchain.mjs'
import { DRIVE_C, WINDOWS_ADDON, runWindowsNode, spawnWindowsNode, stopWine, wineDisplay, wineMissing, wineProcesses, windowsPath } from '../scripts/wine.mjs'

/** Polls `check` until it returns a truthy value (or fails after `ms`). */
async function waitFor(what, check, ms) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

const SUITE = ['engine.mjs', 'crashes.mjs', 'load-errors.mjs', 'downloads.mjs', 'cli.mjs', 'gpu.mjs', 'gpu-no-loader.mjs', 'gpu-off.mjs']
const EXE = { cli: 'whisper-cli.exe', server: 'whisper-server.exe', worker: 'persistent-whisper-worker.exe' }
const BUILD = join(HOME, 'targets', 'win32-x64-gnu', 'bin')

/** Why the suite cannot run: Wine runs only on x86-64 Linux; elsewhere a missing part is a failure. */
function unavailable() {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `Wine runs the Windows suite on x86-64 Linux; this is ${process.platform}-${process.arch}`
  return false
}
const skip = unavailable()

function requireBuild() {
  const missing = wineMissing()
  if (missing) assert.fail(`${missing}; .ci/run installs it`)
  for (const variant of [...TARGETS['win32-x64-gnu'].variants, ...TARGETS['win32-x64-gnu'].gpu]) {
    for (const exe of Object.values(EXE)) {
      const file = join(BUILD, variant, exe)
      assert.ok(existsSync(file), `${file} is missing: run node scripts/prepare.mjs --cross`)
    }
  }
  assert.ok(existsSync(WINDOWS_ADDON), `${WINDOWS_ADDON} is missing: run node scripts/prepare.mjs --cross`)
}

/** The Windows variant this CPU should get, from Linux's view of its flags. */
function expectedVariant() {
  const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').split(/\s+/))
  if (['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'bmi2'].every((f) => flags.has(f))) return 'x86-64-v3'
  return flags.has('sse4_2') ? 'x86-64-v2' : 'none'
}

/** The failing tests of a TAP report, each with its YAML block. */
function failures(tap) {
  const lines = tap.split('\n')
  const found = []
  lines.forEach((line, i) => {
    if (!/^\s*not ok \d+ - /.test(line)) return
    const block = []
    for (let j = i + 1; j < lines.length && !/^\s*(not )?ok \d+ - /.test(lines[j]) && !/^\s*# Subtest/.test(lines[j]); j++) block.push(lines[j])
    found.push(`${line.trim()}\n${block.join('\n')}`)
  })
  return found
}

const T = { skip, timeout: 1_200_000 }

/** The FAKE programs of the suite (fault injection only), built once with mingw-w64 into a folder of this run's. */
let fakes
function fakePrograms() {
  if (fakes) return fakes
  const dir = mkdtempSync(join(tmpdir(), 'pw-wine-fakes-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const exe = join(dir, 'fake-illegal-instruction.exe')
  const built = spawnSync(MINGW_CC, ['-O0', '-o', exe, join(ROOT, '__test__', 'windows', 'fake-illegal-instruction.c')], { encoding: 'utf8' })
  assert.equal(built.status, 0, built.stderr)
  fakes = { PW_FAKE_ILLEGAL_INSTRUCTION: windowsPath(exe), dir }
  return fakes
}

/** What the Windows Vulkan build's programs import from vulkan-1.dll (most of it ggml looks up at run time). */
function vulkanImports() {
  const names = new Set()
  for (const exe of Object.values(EXE)) {
    const dump = spawnSync('x86_64-w64-mingw32-objdump', ['-p', join(BUILD, 'vulkan', exe)], { encoding: 'utf8', maxBuffer: 64 << 20 })
    assert.equal(dump.status, 0, dump.stderr)
    // The import table: "DLL Name: vulkan-1.dll", then one line per function, up to a blank line.
    const table = dump.stdout.split(/\n\s*DLL Name: /).find((t) => /^vulkan-1\.dll/i.test(t)) ?? ''
    for (const name of table.split('\n\n')[0].matchAll(/\b(vk\w+)/g)) names.add(name[1])
  }
  assert.ok(names.has('vkGetInstanceProcAddr'), `the Vulkan build imports ${[...names]} from vulkan-1.dll`)
  return [...names]
}

/** The FAKE vulkan-1.dll (fault injection only: fake-vulkan-loader.c), built into this run's folder. */
function fakeVulkanLoader() {
  const dll = join(fakePrograms().dir, 'vulkan-1.dll')
  const exports = vulkanImports().map((n) => `X(${n})`).join(' ')
  const source = join(ROOT, '__test__', 'windows', 'fake-vulkan-loader.c')
  const built = spawnSync(MINGW_CC, ['-O0', '-shared', '-s', `-DEXPORTS=${exports}`, '-o', dll, source], { encoding: 'utf8' })
  assert.equal(built.status, 0, built.stderr)
  return dll
}

/**
 * For gpu-off.mjs: the FAKE vulkan-1.dll in the prefix's system32, where
 * Windows looks for it (before the PATH, so nowhere else would do) and where
 * Wine takes a native one from ("vulkan-1=n"). Returns what puts Wine's own
 * back; one a killed run left out is put back first.
 */
function fakeVulkanInSystem32() {
  const system = join(DRIVE_C, 'windows', 'system32', 'vulkan-1.dll')
  const kept = `${system}.pw-wine`
  if (existsSync(kept)) renameSync(kept, system)
  renameSync(system, kept)
  copyFileSync(fakeVulkanLoader(), system)
  return () => renameSync(kept, system)
}

/**
 * What gpu.mjs runs on: Mesa's lavapipe as the only Vulkan driver, ggml told
 * to use it, and Mesa's shader cache where __test__/gpu.test.mjs keeps it
 * (the Windows build's SPIR-V is the Linux build's: one warm cache serves
 * both). Wine's vulkan-1.dll passes them to the host's Vulkan loader.
 */
const ICD_DIR = '/usr/share/vulkan/icd.d'
const LAVAPIPE = existsSync(ICD_DIR) ? readdirSync(ICD_DIR).find((f) => /^lvp_icd\b.*\.json$/.test(f)) : undefined
function lavapipeEnv() {
  return {
    VK_ICD_FILENAMES: join(ICD_DIR, LAVAPIPE),
    GGML_VK_VISIBLE_DEVICES: '0',
    MESA_SHADER_CACHE_DIR: join(HOME, 'mesa-shader-cache'),
    // lavapipe's compiled shaders call libm's functions (expf, ...), which
    // its JIT looks up in the process's global scope. A Wine process has no
    // libm there (Wine's ntdll.so does not link it), so the first decode
    // jumped to address 0 and died of SIGSEGV; preloaded, libm is there.
    LD_PRELOAD: ['libm.so.6', process.env.LD_PRELOAD].filter(Boolean).join(' '),
  }
}

/**
 * The Linux environment of each GPU file's node.exe (Wine takes DLL
 * overrides and the Vulkan driver from there, not from a Windows parent):
 * gpu.mjs on lavapipe with an X display; gpu-no-loader.mjs with Wine's
 * vulkan-1.dll switched off; gpu-off.mjs with only a native vulkan-1.dll
 * allowed (the FAKE one).
 */
async function gpuEnv(file) {
  if (file === 'gpu.mjs') return { ...lavapipeEnv(), DISPLAY: await wineDisplay() }
  if (file === 'gpu-no-loader.mjs') return { WINEDLLOVERRIDES: 'vulkan-1=' }
  if (file === 'gpu-off.mjs') return { WINEDLLOVERRIDES: 'vulkan-1=n' }
  return {}
}

/** As __test__/gpu.test.mjs: without lavapipe the Vulkan run has no device to run on (the fallbacks need none). */
const noLavapipe = !LAVAPIPE && `no lavapipe here (${ICD_DIR}/lvp_icd*.json): apt-get install -t bookworm-backports mesa-vulkan-drivers (.ci/run does)`

for (const file of SUITE) {
  test(`Windows (node.exe under Wine): __test__/windows/${file}`, { ...T, skip: T.skip || (file === 'gpu.mjs' && noLavapipe) }, async () => {
    requireBuild()
    const script = windowsPath(join(ROOT, '__test__', 'windows', file))
    const gpu = await gpuEnv(file)
    const { dir: _folder, ...fakes } = fakePrograms()
    const env = { PW_EXPECT_VARIANT: expectedVariant(), ...fakes, ...gpu }
    // Wine picks a session's display driver when its first process starts:
    // the Vulkan run gets a session of its own, on the X display, and the
    // others theirs without one, as before.
    if (gpu.DISPLAY) stopWine()
    const restore = file === 'gpu-off.mjs' ? fakeVulkanInSystem32() : () => {}
    const r = await runWindowsNode(['--test-reporter=tap', script], { env, timeout: 1_100_000 }).finally(() => {
      restore()
      if (gpu.DISPLAY) stopWine()
    })
    const tap = r.stdout
    assert.match(tap, /^# pass \d+/m, `no TAP summary from node.exe (exit ${r.status ?? r.signal}):\n${tap}\n${r.stderr}`)
    const passed = Number(/^# pass (\d+)/m.exec(tap)[1])
    assert.ok(passed > 0, `no test passed:\n${tap}`)
    assert.deepEqual(failures(tap), [], `${file} under Wine:\n${r.stderr}`)
    assert.equal(r.status, 0, `node.exe exit ${r.status ?? r.signal}\n${tap}\n${r.stderr}`)
  })
}

/**
 * node.exe holding a request on `backend`; resolves once its whisper
 * processes run. `started` collects it, for the test's `finally` to end.
 */
async function holdRequest(backend, dir, started, flag) {
  const ready = join(dir, `${backend}.json`)
  const held = spawnWindowsNode([windowsPath(join(ROOT, '__test__', 'windows', 'hold-request.mjs')), backend, windowsPath(ready), ...(flag ? [flag] : [])])
  started.push(held.child)
  let exited = null
  held.exited.then((r) => (exited = r))
  await waitFor(`node.exe to start a ${backend} request`, () => exited || existsSync(ready), 600_000)
  assert.equal(exited, null, `node.exe ended early: ${JSON.stringify(exited)}`)
  return { held, ...JSON.parse(readFileSync(ready, 'utf8')) }
}

/** Ends what a test started: its node.exe first (or it would start new workers), then any Windows program left, and their files on C:. */
function endAll(started, ...exes) {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  for (const exe of exes) {
    for (const pid of wineProcesses(exe)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
  for (const name of readdirSync(DRIVE_C)) if (name.startsWith('pw-control-')) rmSync(join(DRIVE_C, name), { recursive: true, force: true })
  const scratches = join(DRIVE_C, 'pw tests')
  for (const name of existsSync(scratches) ? readdirSync(scratches) : []) if (name.startsWith('hold ')) rmSync(join(scratches, name), { recursive: true, force: true })
}

for (const backend of ['cli', 'server', 'worker']) {
  test(`Windows: node.exe killed with SIGKILL mid-request leaves no ${EXE[backend]} (${backend} backend)`, T, async () => {
    requireBuild()
    const dir = mkdtempSync(join(tmpdir(), 'pw-wine-kill-'))
    const started = []
    try {
      assert.deepEqual(wineProcesses(EXE[backend]), [], 'none before the test')
      const { held } = await holdRequest(backend, dir, started)
      assert.ok(wineProcesses(EXE[backend]).length >= 1, `${EXE[backend]} runs before the kill`)
      process.kill(held.child.pid, 'SIGKILL')
      await held.exited
      await waitFor(`every ${EXE[backend]} to end with node.exe`, () => wineProcesses(EXE[backend]).length === 0, 30_000)
    } finally {
      endAll(started, EXE[backend])
      rmSync(dir, { recursive: true, force: true })
    }
  })
}

test('Windows: the check above sees a whisper process that outlives node.exe (a detached one, outside the job object)', T, async () => {
  requireBuild()
  const dir = mkdtempSync(join(tmpdir(), 'pw-wine-kill-'))
  const started = []
  try {
    assert.deepEqual(wineProcesses(EXE.cli), [], 'no whisper-cli before the test')
    const { held, control } = await holdRequest('worker', dir, started, '--control')
    assert.ok(control > 0)
    assert.equal(wineProcesses(EXE.cli).length, 1, 'the detached whisper-cli runs')
    process.kill(held.child.pid, 'SIGKILL')
    await held.exited
    await waitFor('the worker to end with node.exe', () => wineProcesses(EXE.worker).length === 0, 30_000)
    assert.equal(wineProcesses(EXE.cli).length, 1, 'the detached whisper-cli outlived node.exe, and the check counts it')
  } finally {
    endAll(started, EXE.cli, EXE.worker)
    rmSync(dir, { recursive: true, force: true })
  }
})
