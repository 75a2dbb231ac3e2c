// The ways to run whisper.cpp that the benchmark compares. Each variant has
// start(), transcribe(file) -> Promise<text> (callable many times at once),
// and stop(). Every variant decodes with whisper-cli's defaults: beam search
// of 5, best-of 5, temperature 0 with fallback steps of 0.2, no token
// timestamps, language en.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
const require = createRequire(import.meta.url)
const { locateWhisper } = require('..')
/** The programs the engine runs on this machine, so that every variant runs the same build. */
export const WHISPER_CLI = (await locateWhisper('whisper-cli')).path
const WHISPER_SERVER = (await locateWhisper('whisper-server')).path
const CORES = availableParallelism()

/** whisper-cli's decoding defaults, as whisper-server form fields. */
const CLI_DECODING = {
  language: 'en',
  beam_size: '5',
  best_of: '5',
  temperature: '0',
  temperature_inc: '0.2',
  token_timestamps: 'false',
  max_len: '0',
  response_format: 'json',
}

/** Runs at most `limit` tasks at once, in submission order. */
function limiter(limit) {
  let active = 0
  const waiting = []
  const next = () => {
    if (active >= limit || waiting.length === 0) return
    active++
    const { task, resolve, reject } = waiting.shift()
    task().then(resolve, reject).finally(() => {
      active--
      next()
    })
  }
  return (task) =>
    new Promise((resolve, reject) => {
      waiting.push({ task, resolve, reject })
      next()
    })
}

/** The environment whisper gets from a program that does not think about threads. */
function plainEnv() {
  const env = { ...process.env }
  delete env.OMP_WAIT_POLICY
  return env
}

function run(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)))
    child.once('error', reject)
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${stderr}`))))
  })
}

/**
 * The original TypeScript engine's design: spawn whisper-cli per request from
 * Node, with whisper's default thread count and no environment changes, at
 * most `concurrency` at a time. (Node's pipes are socketpairs, on which
 * whisper-cli's `-of -` fails, so it writes its JSON to a temp file.)
 */
export function naiveCli({ model, concurrency }) {
  const tmp = mkdtempSync(join(tmpdir(), 'pw-bench-'))
  const limit = limiter(concurrency)
  let n = 0
  return {
    async start() {},
    transcribe(file) {
      return limit(async () => {
        const out = join(tmp, `out-${n++}`)
        await run(WHISPER_CLI, ['-m', model, '-f', file, '-l', 'en', '-np', '-oj', '-of', out], plainEnv())
        const json = JSON.parse(readFileSync(`${out}.json`, 'utf8'))
        rmSync(`${out}.json`)
        return json.transcription.map((s) => s.text).join('').trim()
      })
    },
    async stop() {
      rmSync(tmp, { recursive: true, force: true })
    },
  }
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** One whisper-server with its default threads; every request goes to it. */
export function singleServer({ model, threads }) {
  let child
  let url
  return {
    async start() {
      const port = await freePort()
      const args = ['-m', model, '--host', '127.0.0.1', '--port', String(port), '-nlp']
      if (threads) args.push('-t', String(threads))
      child = spawn(WHISPER_SERVER, args, { stdio: 'ignore', env: plainEnv() })
      url = `http://127.0.0.1:${port}`
      for (;;) {
        try {
          if ((await fetch(`${url}/health`)).ok) return
        } catch {}
        await new Promise((r) => setTimeout(r, 25))
      }
    },
    async transcribe(file) {
      const form = new FormData()
      form.append('file', new Blob([readFileSync(file)]), 'audio.wav')
      for (const [k, v] of Object.entries(CLI_DECODING)) form.append(k, v)
      const response = await fetch(`${url}/inference`, { method: 'POST', body: form })
      if (!response.ok) throw new Error(`whisper-server: HTTP ${response.status}`)
      return (await response.json()).text.trim()
    },
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    },
  }
}

/**
 * One single-threaded whisper-server per core, fed from one FIFO queue: the
 * machine's limit as it can be reached, with the files running side by side
 * (they share caches and memory bandwidth) instead of one after another.
 */
export function serverPerCore({ model }) {
  const servers = Array.from({ length: CORES }, () => singleServer({ model, threads: 1 }))
  const idle = [...servers]
  const limit = limiter(CORES)
  return {
    start: () => Promise.all(servers.map((s) => s.start())),
    transcribe: (file) =>
      limit(async () => {
        const server = idle.pop()
        try {
          return await server.transcribe(file)
        } finally {
          idle.push(server)
        }
      }),
    stop: () => Promise.all(servers.map((s) => s.stop())),
  }
}

/** This project's engine. */
export function engine({ model, backend, poolSize, threads, processes, gpu, workerPath, serverPath, timeout }) {
  const { PersistentWhisperEngine } = require('..')
  // gpu, workerPath, serverPath, timeout: the GPU rows (gpu.mjs) pick a build and device.
  const e = new PersistentWhisperEngine({ modelPath: model, backend, poolSize, threads, processes, gpu, workerPath, serverPath, timeout, logLevel: 'silent' })
  return {
    start: () => e.initialize(),
    transcribe: async (file) => (await e.transcribe(file)).text,
    stop: () => e.shutdown(),
    engine: e,
  }
}

/**
 * @napi-rs/whisper: whisper.cpp inside the Node process. Its full() is
 * synchronous, so requests run one at a time on the main thread.
 */
export function napiRsWhisper({ model }) {
  const { Whisper, WhisperFullParams, WhisperSamplingStrategy, decodeAudio } = require('@napi-rs/whisper')
  let whisper
  const limit = limiter(1)
  return {
    async start() {
      whisper = new Whisper(model)
    },
    transcribe(file) {
      return limit(async () => {
        // Let the submitter and other callbacks run between two transcriptions.
        await new Promise((r) => setImmediate(r))
        const params = new WhisperFullParams(WhisperSamplingStrategy.BeamSearch)
        params.nThreads = CORES
        params.language = 'en'
        return whisper.full(params, decodeAudio(readFileSync(file), file)).trim()
      })
    },
    async stop() {},
  }
}

/** The variants of the batch comparison, by name. */
export const VARIANTS = {
  before: {
    label: 'before: 1 whisper-cli at a time',
    make: (o) => naiveCli({ model: o.model, concurrency: 1 }),
  },
  after: {
    label: 'after: 3 concurrent whisper-cli, default threads',
    make: (o) => naiveCli({ model: o.model, concurrency: 3 }),
  },
  'engine-cli': {
    label: `this engine, cli backend`,
    make: (o) => engine({ model: o.model, backend: 'cli', poolSize: o.poolSize }),
  },
  'engine-server': {
    label: `this engine, server backend`,
    make: (o) => engine({ model: o.model, backend: 'server', poolSize: o.poolSize }),
  },
  'engine-worker': {
    label: `this engine, worker backend`,
    make: (o) => engine({ model: o.model, backend: 'worker', poolSize: o.poolSize }),
  },
  'engine-worker-processes': {
    label: `this engine, worker backend, one process per worker`,
    make: (o) => engine({ model: o.model, backend: 'worker', poolSize: o.poolSize, processes: o.poolSize }),
  },
  'engine-server-share': {
    label: `this engine, server backend, threads = cores / workers`,
    make: (o) => engine({ model: o.model, backend: 'server', poolSize: o.poolSize, threads: Math.max(1, Math.floor(CORES / o.poolSize)) }),
  },
  'single-server': {
    label: 'one whisper-server for all requests',
    make: (o) => singleServer({ model: o.model, threads: o.threads }),
  },
  'server-per-core': {
    label: 'reference: one whisper-server per core, 1 thread each, no engine',
    make: (o) => serverPerCore({ model: o.model }),
  },
  'napi-rs-whisper': {
    label: '@napi-rs/whisper, in-process',
    make: (o) => napiRsWhisper({ model: o.model }),
  },
}
