#!/usr/bin/env node
// npm run demo: from a fresh clone to a real transcription by a pool of workers.
// Prepares what is missing (dependencies, addon, whisper.cpp, model), then
// transcribes the test clips and the JFK sample at once and prints the pool.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { prepare } from './prepare.mjs'
import { FIXTURES, JFK_WAV, TINY_EN } from './paths.mjs'
import { main } from './provision.mjs'

async function demo() {
  prepare()
  const { PersistentWhisperEngine } = createRequire(import.meta.url)('..')
  const files = [JFK_WAV, ...readdirSync(FIXTURES).filter((f) => f.endsWith('.wav')).map((f) => join(FIXTURES, f))]
  const engine = new PersistentWhisperEngine({ modelPath: TINY_EN, poolSize: 3, logLevel: 'info' })
  try {
    await engine.initialize()
    const started = Date.now()
    console.log(`\nTranscribing ${files.length} files with 3 workers...\n`)
    const pending = files.map((file) => engine.transcribe(file))
    console.log('Workers right after submitting:')
    console.table((await engine.getWorkerStatuses()).map(({ id, state, currentRequest }) => ({ id, state, currentRequest })))
    console.log(`Queue: ${(await engine.getQueueStatus()).queueLength} waiting\n`)
    for (const [i, result] of (await Promise.all(pending)).entries()) {
      console.log(`${result.workerId}  ${(result.processingTimeMs / 1000).toFixed(2)} s  ${files[i].split('/').pop()}: ${result.text}`)
    }
    console.log(`\nAll ${files.length} done in ${((Date.now() - started) / 1000).toFixed(2)} s\n`)
    const { poolStats, ...status } = await engine.getStatus()
    console.log('Engine status:', status)
    console.log('Pool statistics:', poolStats)
  } finally {
    await engine.shutdown().catch(() => {})
  }
}

// An error (a missing tool, a failed build, a model that does not load) is
// one line that says what to do, not a stack.
main('demo', demo)
