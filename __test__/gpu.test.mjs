// GPUs through Vulkan (issue 18), on Mesa's software Vulkan driver
// (lavapipe): the checkout's Vulkan build (bin/vulkan/) is chosen at run
// time where a Vulkan device works, writes the CPU build's text, and never
// stops the CPU build: `gpu: false` does not load the Vulkan loader at all,
// a missing loader or GPU falls back to the CPU with a 'deviceFallback'
// event, and a GPU worker process that dies mid-decode fails over to the CPU
// build with its request. Each engine runs in a process of its own
// (gpu-run.mjs), in an environment that names lavapipe as the only Vulkan
// driver, so a real GPU on the machine changes nothing here.
//
// lavapipe is a CPU-type device, which ggml skips unless
// GGML_VK_VISIBLE_DEVICES names it; its first run compiles every shader
// (minutes), kept in Mesa's shader cache (.whisper/mesa-shader-cache/) for
// the next runs: `before` warms it once.
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { HOME } from '../scripts/paths.mjs'
import { FIXTURES, TINY_EN, pw } from './helpers.mjs'
import { runEngine } from './gpu-run-client.mjs'

const cpuWorker = (await pw.locateWhisper('persistent-whisper-worker')).path
const VULKAN_DIR = join(dirname(dirname(cpuWorker)), 'vulkan')
const VULKAN_WORKER = join(VULKAN_DIR, 'persistent-whisper-worker')
const ICD_DIR = '/usr/share/vulkan/icd.d'
const LAVAPIPE = existsSync(ICD_DIR) ? readdirSync(ICD_DIR).find((f) => /^lvp_icd\b.*\.json$/.test(f)) : undefined

const skip =
  process.platform !== 'linux' || process.arch !== 'x64'
    ? 'the Vulkan build is part of the linux-x64 package'
    : !LAVAPIPE
      ? `no lavapipe here (${ICD_DIR}/lvp_icd*.json): apt-get install -t bookworm-backports mesa-vulkan-drivers (Mesa 25; Debian 12's Mesa 22 crashes)`
      : false

// Two held-out clips: short, since lavapipe decodes many times slower than the CPU build.
const CLIPS = ['color.wav', 'weather.wav'].map((f) => join(FIXTURES, f))
const T = { timeout: 900_000, skip }

/**
 * lavapipe as the only Vulkan driver, ggml told to use it, and Mesa's
 * shader cache in the ignored .whisper/ folder, kept with the builds: a
 * cold cache costs about 15 minutes on 2 busy cores, a warm one nothing.
 */
const LAVAPIPE_ENV = {
  VK_ICD_FILENAMES: join(ICD_DIR, LAVAPIPE ?? 'none'),
  GGML_VK_VISIBLE_DEVICES: '0',
  MESA_SHADER_CACHE_DIR: join(HOME, 'mesa-shader-cache'),
}

/** One engine in its own process (gpu-run.mjs) with `env` added; its JSON report. */
const run = (options, clips, env = {}) => runEngine({ modelPath: TINY_EN, maxWorkers: 1, timeout: 600_000, ...options }, clips, env)

const scratch = mkdtempSync(join(tmpdir(), 'pw-gpu-'))
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }))

/** A folder whose libvulkan.so.1 is an empty file: on LD_LIBRARY_PATH, the system's loader cannot be loaded. */
function hiddenLoader() {
  const dir = join(scratch, 'hidden')
  rmSync(dir, { recursive: true, force: true })
  spawnSync('mkdir', ['-p', dir])
  writeFileSync(join(dir, 'libvulkan.so.1'), '')
  return dir
}

/**
 * A FAKE Vulkan loader, for fault injection only: it exports what the
 * Vulkan build links to, and when a program loads it, it creates `mark` and
 * exits (code 86). On LD_LIBRARY_PATH, it proves whether a run loaded the
 * Vulkan loader at all.
 */
function markingLoader(mark) {
  const dir = join(scratch, 'marking')
  rmSync(dir, { recursive: true, force: true })
  spawnSync('mkdir', ['-p', dir])
  // What each program of the Vulkan build imports from the loader (most it looks up at run time).
  const names = new Set()
  for (const program of ['persistent-whisper-worker', 'whisper-cli', 'whisper-server']) {
    const nm = spawnSync('nm', ['-D', '--undefined-only', '--format=posix', join(VULKAN_DIR, program)], { encoding: 'utf8' })
    assert.equal(nm.status, 0, nm.stderr)
    for (const name of nm.stdout.split('\n').map((l) => l.split(' ')[0])) if (/^vk\w+$/.test(name)) names.add(name)
  }
  assert.ok(names.has('vkGetInstanceProcAddr'), `the Vulkan build imports ${[...names]} from the loader`)
  const source = join(dir, 'fake-vulkan.c')
  writeFileSync(
    source,
    [
      '#include <fcntl.h>',
      '#include <unistd.h>',
      ...[...names].map((n) => `void ${n}(void) {}`),
      `__attribute__((constructor)) static void loaded(void) { close(open(${JSON.stringify(mark)}, O_CREAT | O_WRONLY, 0600)); _exit(86); }`,
    ].join('\n'),
  )
  const cc = spawnSync('cc', ['-shared', '-fPIC', '-o', join(dir, 'libvulkan.so.1'), source, '-Wl,-soname,libvulkan.so.1'], { encoding: 'utf8' })
  assert.equal(cc.status, 0, cc.stderr)
  return dir
}

let cpuTexts

before(async () => {
  if (skip) return
  assert.ok(existsSync(VULKAN_WORKER), `${VULKAN_WORKER} is missing: npm run setup builds the Vulkan variant`)
  // The CPU build's text, to compare with.
  cpuTexts = (await run({ gpu: false }, CLIPS)).texts
  // Mesa compiles each shader once into its cache (minutes on a cold cache).
  await run({ gpu: 'auto' }, [CLIPS[0]], LAVAPIPE_ENV)
}, { timeout: 1_800_000 })

test("gpu 'auto' decodes on lavapipe through the Vulkan build, with the CPU build's text", T, async () => {
  const r = await run({ gpu: 'auto' }, CLIPS, LAVAPIPE_ENV)
  assert.equal(r.initial.status.kind, 'vulkan', JSON.stringify(r.initial.status))
  assert.match(r.initial.status.name, /llvmpipe/)
  assert.ok(r.initial.status.memoryBytes > 0)
  assert.ok(r.initial.status.decodes >= 1, 'the worker says how many decodes fit')
  assert.equal(r.initial.program.variant, 'vulkan')
  assert.ok(r.initial.processes.length > 0)
  for (const p of r.initial.processes) {
    assert.equal(dirname(p.exe), VULKAN_DIR)
    assert.ok(p.vulkanMapped, 'the GPU worker process has the Vulkan loader loaded')
  }
  assert.deepEqual(r.texts, cpuTexts)
  assert.deepEqual(r.events, [])
  for (const w of r.after.workers) assert.equal(w.kind, 'vulkan')
})

test('on a software renderer the default timeout allows for its speed: clips submitted at once all complete', T, async () => {
  // Three decodes at once on lavapipe, each several times slower than on the CPU build.
  const clips = ['color.wav', 'weather.wav', 'kitchen.wav'].map((f) => join(FIXTURES, f))
  const cpu = (await run({ gpu: false }, clips)).texts
  const r = await run({ gpu: 'auto', maxWorkers: 3, timeout: 'default', concurrent: true }, clips, LAVAPIPE_ENV)
  assert.equal(r.initial.status.kind, 'vulkan')
  assert.deepEqual(r.texts, cpu)
})

test("the 'cli' backend runs the Vulkan build's whisper-cli on lavapipe, with the CPU build's text", T, async () => {
  const r = await run({ gpu: 'auto', backend: 'cli' }, [CLIPS[0]], LAVAPIPE_ENV)
  assert.equal(r.initial.status.kind, 'vulkan')
  assert.equal(dirname(r.initial.program.path), VULKAN_DIR)
  assert.deepEqual(r.texts, [cpuTexts[0]])
})

test('gpu: false stays on the CPU build and never loads the Vulkan loader', T, async () => {
  const mark = join(scratch, 'vulkan-was-loaded')
  const fake = markingLoader(mark)
  const env = { ...LAVAPIPE_ENV, LD_LIBRARY_PATH: fake }
  // The fake is seen: a run that may use the GPU loads it, and falls back.
  const auto = await run({ gpu: 'auto' }, [CLIPS[0]], env)
  assert.ok(existsSync(mark), "gpu 'auto' loads the Vulkan loader")
  assert.equal(auto.initial.status.kind, 'cpu')
  rmSync(mark)

  for (const backend of ['worker', 'cli', 'server']) {
    const off = await run({ gpu: false, backend }, [CLIPS[0]], env)
    assert.ok(!existsSync(mark), `gpu: false with backend ${backend} loaded the Vulkan loader`)
    assert.equal(off.initial.status.kind, 'cpu')
    assert.notEqual(off.initial.program.variant, 'vulkan')
    assert.deepEqual(off.texts, [cpuTexts[0]])
    assert.deepEqual(off.events, [], 'no fallback: the CPU is what was asked for')
    for (const p of off.initial.processes) assert.ok(!p.vulkanMapped && dirname(p.exe) !== VULKAN_DIR, p.exe)
  }
})

test("without a Vulkan loader, gpu 'auto' falls back to the CPU build, says so, and transcribes", T, async () => {
  const r = await run({ gpu: 'auto' }, CLIPS, { ...LAVAPIPE_ENV, LD_LIBRARY_PATH: hiddenLoader() })
  assert.equal(r.initial.status.kind, 'cpu')
  assert.notEqual(r.initial.program.variant, 'vulkan')
  assert.deepEqual(r.texts, cpuTexts)
  const fallbacks = r.events.filter((e) => e.type === 'deviceFallback')
  assert.equal(fallbacks.length, 1, JSON.stringify(r.events))
  assert.match(fallbacks[0].message, /libvulkan\.so\.1/)
  assert.equal(fallbacks[0].device.kind, 'cpu')
  for (const p of r.after.processes) assert.ok(!p.vulkanMapped && dirname(p.exe) !== VULKAN_DIR, p.exe)
})

test('a software renderer is no GPU unless GGML_VK_VISIBLE_DEVICES names it; a GPU index that is not there falls back', T, async () => {
  const unnamed = await run({ gpu: 'auto' }, [], { VK_ICD_FILENAMES: LAVAPIPE_ENV.VK_ICD_FILENAMES, GGML_VK_VISIBLE_DEVICES: '' })
  assert.equal(unnamed.initial.status.kind, 'cpu')
  assert.match(unnamed.events.find((e) => e.type === 'deviceFallback')?.message ?? '', /sees no GPU.*GGML_VK_VISIBLE_DEVICES/)

  const absent = await run({ gpu: 3 }, [], LAVAPIPE_ENV)
  assert.equal(absent.initial.status.kind, 'cpu')
  assert.match(absent.events.find((e) => e.type === 'deviceFallback')?.message ?? '', /1 GPU, none with index 3/)
})

test('a GPU worker process that dies mid-decode fails over to the CPU build, once, and its request completes', T, async () => {
  const r = await run({ gpu: 'auto', killGpuWorker: true }, CLIPS, LAVAPIPE_ENV)
  assert.equal(dirname(r.killed.exe), VULKAN_DIR, 'the killed process was a GPU one')
  assert.deepEqual(r.texts, cpuTexts, 'the request in flight ran again, on the CPU')
  const fallbacks = r.events.filter((e) => e.type === 'deviceFallback')
  assert.equal(fallbacks.length, 1, JSON.stringify(r.events))
  assert.match(fallbacks[0].message, /GPU failed/)
  assert.equal(r.events.filter((e) => e.type === 'requestRetried').length, 1)
  assert.equal(r.after.status.kind, 'cpu')
  assert.ok(r.after.processes.length > 0)
  for (const p of r.after.processes) assert.ok(!p.vulkanMapped && dirname(p.exe) !== VULKAN_DIR, p.exe)
  for (const w of r.after.workers) assert.equal(w.kind, 'cpu')
})
