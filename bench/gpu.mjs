// GPU rows of the benchmark (issue 18), measured only where a GPU is
// present: `npm run bench -- --only gpu`, and at the end of a full run.
// For base and large-v3-turbo (where downloaded):
//   - makespan of a batch submitted at once, and dictation latency (one
//     clip at a time into an idle engine): the CPU build (gpu: false)
//     against each GPU build of the package (Vulkan, and CUDA where built);
//   - the worker backend's concurrent decodes on one GPU (one model in
//     video memory, several decode states) against one whisper-server on
//     the same GPU (the engine's 'server' backend with one worker).
// Software renderers (lavapipe/llvmpipe, SwiftShader) are not GPUs: they
// are skipped, and with --software-gpu measured but labelled as such.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { createRequire } from 'node:module'
import { BASE, FIXTURES, ROOT } from '../scripts/paths.mjs'
import { median, percentile } from './measure.mjs'

const require = createRequire(import.meta.url)
const SOFTWARE = /llvmpipe|lavapipe|swiftshader|softpipe/i
const WORKER = 'persistent-whisper-worker'

/** The GPU builds beside the CPU build the engine picks here, each with the GPUs it sees: [{ build, dir, gpus }]. */
export async function gpuBuilds({ software = false } = {}) {
  const cpu = await require('..').locateWhisper(WORKER)
  const bin = dirname(dirname(cpu.path))
  const found = []
  for (const build of ['cuda', 'vulkan']) {
    const worker = join(bin, build, WORKER)
    if (!existsSync(worker)) continue
    const r = spawnSync(worker, ['--list-devices'], { encoding: 'utf8', timeout: 60_000 })
    if (r.status !== 0) continue
    const gpus = JSON.parse(r.stdout).gpus.filter((g) => software || !SOFTWARE.test(g.name))
    if (gpus.length) found.push({ build, dir: join(bin, build), gpus })
  }
  return found
}

/** The models to measure: base (provisioned) and large-v3-turbo where downloaded. */
function models() {
  const { listModels } = require('..')
  const turbo = listModels().find((m) => m.name === 'large-v3-turbo')
  return [
    ['base', BASE, existsSync(BASE)],
    ['large-v3-turbo', turbo?.path, Boolean(turbo?.downloaded)],
  ]
}

function runner(job) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bench', 'runner.mjs'), JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err = (err + d).slice(-4000)))
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`gpu bench ${job.scenario} failed (exit ${code}):\n${err}`))))
  })
}

/**
 * Rows for one model: [{ model, label, makespanS, dictationP50S }] and the
 * concurrency comparison, each the median of `rounds`.
 */
async function measureModel(name, model, builds, files, opts, progress) {
  const kitchen = join(FIXTURES, 'kitchen.wav')
  const ways = [['CPU build (gpu: false)', { gpu: false }]]
  for (const { build, dir, gpus } of builds) {
    // A build named by path runs on its own default device: its first GPU.
    // The engine cannot tell it is a slow software renderer: a long timeout.
    const software = SOFTWARE.test(gpus[0].name)
    ways.push([
      `${build}: ${gpus[0].name}${software ? ' (software, not a GPU)' : ''}`,
      { workerPath: join(dir, WORKER), serverPath: join(dir, 'whisper-server'), ...(software ? { timeout: 1_800_000 } : {}) },
    ])
  }
  const rows = []
  for (const [label, custom] of ways) {
    const makespans = []
    const dictation = []
    for (let round = 0; round < opts.rounds; round++) {
      progress(`gpu: ${name}, ${label}, round ${round + 1}`)
      const batch = await runner({ scenario: 'batch', custom: { model, backend: 'worker', poolSize: opts.poolSize, ...custom }, files })
      makespans.push(batch.makespanMs)
      const seq = await runner({ scenario: 'sequential', custom: { model, backend: 'worker', poolSize: 1, ...custom }, files: Array(opts.dictation).fill(kitchen) })
      dictation.push(...seq.latenciesMs)
    }
    rows.push({ model: name, label, makespanS: median(makespans) / 1000, dictationP50S: percentile(dictation, 50) / 1000 })
  }
  const concurrency = []
  for (const [label, custom] of ways.slice(1)) {
    const server = []
    for (let round = 0; round < opts.rounds; round++) {
      progress(`gpu: ${name}, one whisper-server on ${label}, round ${round + 1}`)
      server.push((await runner({ scenario: 'batch', custom: { model, backend: 'server', poolSize: 1, ...custom }, files })).makespanMs)
    }
    const worker = rows.find((r) => r.label === label)
    concurrency.push({ model: name, label, workerS: worker.makespanS, serverS: median(server) / 1000 })
  }
  return { rows, concurrency }
}

/** The GPU section as Markdown, or a line saying why there is none. */
export async function gpuSection(files, opts, progress = () => {}) {
  const builds = await gpuBuilds({ software: opts.softwareGpu })
  if (!builds.length) {
    return `## GPUs\n\nNo GPU here (the package's GPU builds see none${opts.softwareGpu ? '' : '; software renderers are skipped'}): no GPU rows.\n`
  }
  const rows = []
  const concurrency = []
  const skipped = []
  // opts.gpuModels ([[name, path, true]]): other models, to try the section quickly.
  for (const [name, model, present] of opts.gpuModels ?? models()) {
    if (!present) {
      skipped.push(`${name} (not downloaded: npx persistent-whisper models download ${name})`)
      continue
    }
    const m = await measureModel(name, model, builds, files, opts, progress)
    rows.push(...m.rows)
    concurrency.push(...m.concurrency)
  }
  const devices = builds.map((b) => `${b.build}: ${b.gpus.map((g) => `${g.name}${g.memoryBytes ? ` (${(g.memoryBytes / 2 ** 30).toFixed(1)} GiB)` : ''}`).join(', ')}`)
  const lines = [
    '## GPUs',
    '',
    `Devices: ${devices.join('; ')}. ${files.length} files at once (${[...new Set(files.map((f) => basename(f)))].join(', ')}), worker backend, ${opts.poolSize} workers; dictation: kitchen.wav one at a time; medians of ${opts.rounds} rounds.`,
    ...(skipped.length ? ['', `Not measured: ${skipped.join('; ')}.`] : []),
    '',
    '| model | build and device | batch makespan (s) | dictation p50 (s) |',
    '|---|---|---:|---:|',
    ...rows.map((r) => `| ${r.model} | ${r.label} | ${r.makespanS.toFixed(2)} | ${r.dictationP50S.toFixed(2)} |`),
    '',
    'One GPU, the same batch: the worker backend (one model in video memory, concurrent decodes by free memory) against one whisper-server (requests one at a time).',
    '',
    '| model | build and device | worker backend (s) | one whisper-server (s) |',
    '|---|---|---:|---:|',
    ...concurrency.map((c) => `| ${c.model} | ${c.label} | ${c.workerS.toFixed(2)} | ${c.serverS.toFixed(2)} |`),
    '',
  ]
  return lines.join('\n')
}
