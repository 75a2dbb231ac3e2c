// Runs one engine in a process of its own (gpu-run.mjs) with `env` added,
// for the GPU tests on Linux (gpu.test.mjs) and under Wine
// (windows/gpu-common.mjs): its JSON report, with its stderr (the engine's
// warnings). Node's built-ins only: node.exe under Wine imports it too.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const RUN = join(dirname(fileURLToPath(import.meta.url)), 'gpu-run.mjs')

export function runEngine(options, clips, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN, JSON.stringify(options), JSON.stringify(clips)], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('error', reject)
    child.on('close', (code) => {
      try {
        const report = JSON.parse(out.trim().split('\n').pop())
        assert.ok(report.ok, `${report.code}: ${report.message}`)
        resolve({ ...report, stderr: err })
      } catch (e) {
        reject(new Error(`gpu-run exited ${code}: ${e.message}\n${out}\n${err}`))
      }
    })
  })
}
