#!/usr/bin/env node
// npm run bench [-- --quick] [--model tiny.en|base|PATH] [--clips a.wav,b.wav]
//                [--pool-size N] [--rounds N]
//                [--only batch|dictation|memory [--variants a,b] | --only fleet | --only live
//                 | --only gpu [--software-gpu] | --only threading]
//
// Runs every way of transcribing with whisper.cpp that the README talks about,
// on real speech, in one run: interleaved rounds, medians reported, each
// measurement in a fresh process. Writes bench/results.md and bench/results.svg.
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, totalmem } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { createRequire } from 'node:module'
import { prepare } from '../scripts/prepare.mjs'
import { hostTarget, TARGETS } from '../scripts/targets.mjs'
import { buildNative } from '../scripts/whisper-build.mjs'
import { BASE, FIXTURES, JFK_WAV, MODEL_SOURCES, ROOT, TINY_EN, WHISPER_SOURCE } from '../scripts/paths.mjs'
import { median, percentile } from './measure.mjs'
import { VARIANTS } from './variants.mjs'
import { markdown, svg } from './report.mjs'

function flags(argv) {
  const get = (name) => {
    const i = argv.indexOf(`--${name}`)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const quick = argv.includes('--quick')
  const modelName = get('model') ?? 'tiny.en'
  return {
    quick,
    modelName,
    model: MODEL_SOURCES[modelName]?.output ?? resolve(modelName),
    clips: get('clips')?.split(',').map((c) => (c.includes('/') ? resolve(c) : join(FIXTURES, c))),
    poolSize: Number(get('pool-size') ?? 3),
    rounds: Number(get('rounds') ?? (quick ? 1 : 3)),
    requests: quick ? 6 : 14,
    dictation: quick ? 2 : 4,
    overheadRequests: quick ? 500 : 2000,
    modelSizes: !quick,
    only: get('only'),
    variants: get('variants')?.split(','),
    // GPU rows on a software renderer (lavapipe): to try the section, not GPU figures.
    softwareGpu: argv.includes('--software-gpu'),
  }
}

const opts = flags(process.argv.slice(2))
const { locateWhisper } = createRequire(import.meta.url)('..')
const started = Date.now()
let step = 0
let steps = 0

function progress(what) {
  step++
  const s = Math.round((Date.now() - started) / 1000)
  process.stderr.write(`\r\x1b[K[bench] ${step}/${steps} ${what} (${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')})`)
}

function runner(job) {
  return new Promise((resolvePromise, reject) => {
    // Variants that stand for other programs see the environment a plain
    // program would give them; the engine sets its own.
    const env = { ...process.env }
    delete env.OMP_WAIT_POLICY
    // A job may name variables of its own (bench/threading.mjs: OpenMP's wait policy).
    Object.assign(env, job.env)
    const child = spawn(process.execPath, [join(ROOT, 'bench', 'runner.mjs'), JSON.stringify(job)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err = (err + d).slice(-4000)))
    child.once('exit', (code) => {
      if (code === 0) resolvePromise(JSON.parse(out.trim().split('\n').pop()))
      else reject(new Error(`${job.scenario} ${job.variant ?? ''} failed (exit ${code}):\n${err}`))
    })
  })
}

/** WAV duration in seconds, from the header (the clips are 16-bit PCM). */
function audioSeconds(file) {
  const bytes = readFileSync(file)
  const at = bytes.indexOf('data', 12, 'latin1')
  return bytes.readUInt32LE(at + 4) / bytes.readUInt32LE(28)
}

function workload() {
  const clips = opts.clips ?? [JFK_WAV, ...JSON.parse(readFileSync(join(FIXTURES, 'clips.json'), 'utf8')).clips.map((c) => join(FIXTURES, c.file))]
  return Array.from({ length: Math.max(opts.requests, clips.length) }, (_, i) => clips[i % clips.length])
}

/** Rounds of every variant, in a rotated order each round. */
async function batches(files, names) {
  const runs = Object.fromEntries(names.map((n) => [n, []]))
  for (let round = 0; round < opts.rounds; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + round) % names.length]
      progress(`round ${round + 1}/${opts.rounds}: ${name}, ${files.length} files at once`)
      runs[name].push(await runner({ scenario: 'batch', variant: name, model: opts.model, poolSize: opts.poolSize, files }))
    }
  }
  return runs
}

function summarizeBatch(runs, audioTotal, limitMs) {
  const rows = Object.entries(runs).map(([name, list]) => {
    const makespan = median(list.map((r) => r.makespanMs)) / 1000
    return {
      name,
      label: VARIANTS[name].label,
      makespan,
      throughput: audioTotal / makespan,
      p50: median(list.map((r) => percentile(r.latenciesMs, 50))) / 1000,
      p95: median(list.map((r) => percentile(r.latenciesMs, 95))) / 1000,
      cpu: median(list.map((r) => r.cpuSeconds)),
      rss: median(list.map((r) => r.peakRssMb)),
      stall: median(list.map((r) => r.maxStallMs)),
      vsLimit: makespan / (limitMs / 1000),
    }
  })
  const before = rows.find((r) => r.name === 'before')
  for (const r of rows) r.speedup = before ? before.makespan / r.makespan : NaN
  return rows
}

/**
 * --only batch|dictation|memory with --variants a,b: a quick look at one
 * section while working on it, printed as JSON; results.md stays as it is.
 */
async function quickLook(files, names, audioTotal, limitMs) {
  const picked = opts.variants ?? names
  const kitchen = join(FIXTURES, 'kitchen.wav')
  const sections = {
    batch: async () => summarizeBatch(await batches(files, picked), audioTotal, limitMs).map((r) => ({ name: r.name, makespan: r.makespan, vsLimit: r.vsLimit, rss: r.rss })),
    dictation: () => dictation(kitchen),
    memory: () => memory(kitchen),
  }
  if (!sections[opts.only]) throw new Error(`--only takes ${Object.keys(sections).join(', ')}`)
  process.stdout.write(`${JSON.stringify({ limitMs, [opts.only]: await sections[opts.only]() }, null, 2)}\n`)
}

const CORES = availableParallelism()
const SHARE = Math.max(1, Math.floor(CORES / opts.poolSize))
const DICTATION = [
  ['engine, cli backend (defaults: a thread budget)', { backend: 'cli', poolSize: opts.poolSize }],
  [`engine, server backend (defaults: ${CORES} threads per server)`, { backend: 'server', poolSize: opts.poolSize }],
  [`engine, server backend, threads = cores / workers (${SHARE})`, { backend: 'server', poolSize: opts.poolSize, threads: SHARE }],
  ['engine, worker backend (defaults: a thread budget)', { backend: 'worker', poolSize: opts.poolSize }],
]

async function dictation(clip) {
  const runs = {}
  const plain = [[`one whisper-server, ${CORES} threads (the reference)`, 'single-server'], ['@napi-rs/whisper', 'napi-rs-whisper']]
  for (let round = 0; round < opts.rounds; round++) {
    for (const [label, custom] of DICTATION) {
      progress(`dictation round ${round + 1}: ${label}`)
      const r = await runner({ scenario: 'sequential', custom: { model: opts.model, ...custom }, files: Array(opts.dictation).fill(clip) })
      ;(runs[label] ??= []).push(...r.latenciesMs)
    }
    for (const [label, variant] of plain) {
      progress(`dictation round ${round + 1}: ${label}`)
      const r = await runner({ scenario: 'sequential', variant, model: opts.model, threads: CORES, files: Array(opts.dictation).fill(clip) })
      ;(runs[label] ??= []).push(...r.latenciesMs)
    }
  }
  return Object.entries(runs).map(([label, ms]) => ({ label, p50: percentile(ms, 50), p95: percentile(ms, 95), n: ms.length }))
}

async function modelSizes(clips) {
  const rows = []
  for (const [modelName, model] of [['tiny.en', TINY_EN], ['base', BASE]]) {
    for (const backend of ['cli', 'server']) {
      progress(`per-request time: ${modelName}, ${backend}`)
      const threads = availableParallelism()
      const r = await runner({ scenario: 'sequential', custom: { model, backend, poolSize: 1, threads }, files: clips, gapMs: 50 })
      rows.push({ model: modelName, backend, p50: percentile(r.latenciesMs, 50), p95: percentile(r.latenciesMs, 95), n: r.latenciesMs.length })
    }
  }
  return rows
}

/**
 * Memory: 3 requests at once (the default pool), peak RSS of the whisper
 * processes, against one whisper-cli run on the same file.
 */
async function memory(clip) {
  const rows = []
  for (const [modelName, model] of [['tiny.en', TINY_EN], ['base', BASE]]) {
    const peaks = {}
    for (let round = 0; round < opts.rounds; round++) {
      for (const backend of ['one-cli', 'cli', 'server', 'worker', 'worker-processes']) {
        progress(`memory round ${round + 1}: ${modelName}, ${backend}`)
        const r = await runner({ scenario: 'memory', backend, model, file: clip, concurrent: opts.poolSize })
        ;(peaks[backend] ??= []).push(r.peakRssMb)
      }
    }
    const one = median(peaks['one-cli'])
    const backends = ['cli', 'server', 'worker', 'worker-processes']
    rows.push({ model: modelName, one, ...Object.fromEntries(backends.map((b) => [b, { mb: median(peaks[b]), ratio: median(peaks[b]) / one }])) })
  }
  return rows
}

/** Abort of a long file after 1.5 s, and the request after it, per backend. */
async function aborts(files, clip) {
  const runs = {}
  for (let round = 0; round < opts.rounds; round++) {
    for (const backend of ['cli', 'server', 'worker']) {
      progress(`abort round ${round + 1}: ${backend}`)
      ;(runs[backend] ??= []).push(await runner({ scenario: 'abort', backend, model: opts.model, files, clip, afterMs: 1500 }))
    }
  }
  return Object.entries(runs).map(([backend, list]) => ({
    backend,
    abortMs: median(list.map((r) => r.abortMs)),
    maxAbortMs: Math.max(...list.map((r) => r.abortMs)),
    nextMs: median(list.map((r) => r.nextMs)),
    idleMs: median(list.map((r) => r.idleMs)),
  }))
}

/**
 * The builds the platform package ships, against whisper-cli built for this
 * very CPU (-march=native), one file at a time with every core: a portable
 * build must be within 5% of native.
 */
async function portability(files) {
  const native = join(buildNative(), 'whisper-cli')
  const chosen = await locateWhisper('whisper-cli')
  const variantsDir = dirname(dirname(chosen.path))
  // Every build of the package that this CPU runs (the chosen one and those below it).
  const shipped = TARGETS[hostTarget()].variants
    .slice(0, TARGETS[hostTarget()].variants.indexOf(chosen.variant) + 1)
    .map((v) => [`portable ${v}${v === chosen.variant ? ' (the one the engine picks here)' : ''}`, join(variantsDir, v, 'whisper-cli')])
  const programs = [['native (-march=native)', native], ...shipped]
  const totals = Object.fromEntries(programs.map(([label]) => [label, []]))
  for (let round = 0; round < opts.rounds; round++) {
    for (let i = 0; i < programs.length; i++) {
      const [label, program] = programs[(i + round) % programs.length]
      progress(`portable vs native round ${round + 1}: ${label}`)
      const r = await runner({ scenario: 'program', program, model: opts.model, files, threads: availableParallelism() })
      totals[label].push(r.ms.reduce((a, b) => a + b, 0))
    }
  }
  const nativeMs = median(totals[programs[0][0]])
  return programs.map(([label]) => ({ label, ms: median(totals[label]), vsNative: median(totals[label]) / nativeMs, picked: label.includes('engine picks') }))
}

function machine() {
  const os = readFileSync('/etc/os-release', 'utf8').match(/PRETTY_NAME="(.+)"/)?.[1] ?? process.platform
  return `${cpus()[0].model}, ${availableParallelism()} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, ${os}, Node ${process.version}`
}

async function main() {
  process.stderr.write('[bench] preparing (build, setup)\n')
  prepare()
  const files = workload()
  if (opts.only === 'fleet') return (await import('./fleet.mjs')).fleet(files, opts)
  if (opts.only === 'gpu') return process.stdout.write(await (await import('./gpu.mjs')).gpuSection(files, opts, progress))
  if (opts.only === 'live') return (await import('./live.mjs')).live(opts)
  if (opts.only === 'threading') {
    const result = await (await import('./threading.mjs')).threading(files, opts, runner, progress)
    return process.stdout.write(`\n${JSON.stringify(result, null, 2)}\n`)
  }
  const distinct = [...new Set(files)]
  const names = Object.keys(VARIANTS)
  steps = 1 + opts.rounds * names.length + opts.rounds * (DICTATION.length + 2) + (opts.modelSizes ? 4 : 0) + opts.rounds * 10 + opts.rounds * 3 + opts.rounds * 4 + 1

  progress('single-thread processing time of each clip (the machine limit)')
  const limit = await runner({ scenario: 'limit', model: opts.model, files: distinct })
  const limitMs = files.reduce((sum, f) => sum + limit.ms[f], 0) / availableParallelism()
  const audioTotal = files.reduce((sum, f) => sum + audioSeconds(f), 0)

  if (opts.only) return quickLook(files, names, audioTotal, limitMs)
  const batch = summarizeBatch(await batches(files, names), audioTotal, limitMs)
  const kitchen = join(FIXTURES, 'kitchen.wav')
  const dictationRows = await dictation(kitchen)
  const sizes = opts.modelSizes ? await modelSizes(distinct) : []
  const memoryRows = await memory(kitchen)
  const abortRows = await aborts(distinct, kitchen)
  const portable = await portability(distinct)
  progress(`engine overhead: ${opts.overheadRequests} requests to the fake whisper-server`)
  const overhead = await runner({ scenario: 'overhead', model: TINY_EN, requests: opts.overheadRequests })
  // Only where a GPU is present; otherwise one line saying so.
  const gpu = await (await import('./gpu.mjs')).gpuSection(files, opts, progress)
  process.stderr.write('\n')

  const report = {
    date: new Date().toISOString().slice(0, 10),
    machine: machine(),
    whisper: `whisper.cpp ${WHISPER_SOURCE.version}`,
    model: basename(opts.model),
    quick: opts.quick,
    rounds: opts.rounds,
    poolSize: opts.poolSize,
    cores: availableParallelism(),
    files: files.map((f) => basename(f)),
    audioTotal,
    limitMs,
    batch,
    dictation: { clip: basename(kitchen), seconds: audioSeconds(kitchen), rows: dictationRows },
    sizes,
    memory: { clip: basename(kitchen), concurrent: opts.poolSize, rows: memoryRows },
    aborts: abortRows,
    portable,
    portableFiles: distinct.map((f) => basename(f)),
    overhead,
    durationS: (Date.now() - started) / 1000,
  }
  writeFileSync(join(ROOT, 'bench', 'results.md'), `${markdown(report)}\n${gpu}`)
  writeFileSync(join(ROOT, 'bench', 'results.svg'), svg(report))
  process.stdout.write(`${markdown(report)}\n${gpu}`)
  process.stderr.write(`[bench] wrote bench/results.md and bench/results.svg in ${Math.round(report.durationS)} s\n`)
}

main().catch((err) => {
  process.stderr.write(`\n[bench] ${err.stack ?? err}\n`)
  process.exit(1)
})
