// The worker program is rebuilt when any of its sources changes: its build
// stamp (scripts/whisper-build.mjs, WORKER_SOURCES) covers every file of
// worker/src and worker-protocol/src, so a module added later (the device
// code, the VAD) cannot leave a stale worker in .whisper/ or a package.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from '../scripts/paths.mjs'
import { WORKER_SOURCES } from '../scripts/whisper-build.mjs'

test("the worker's build stamp covers every source file of the worker and its protocol", () => {
  for (const dir of ['worker/src', 'worker-protocol/src']) {
    for (const file of readdirSync(join(ROOT, dir))) {
      assert.ok(WORKER_SOURCES.includes(join(ROOT, dir, file)), `${dir}/${file} is not in the worker's build stamp`)
    }
  }
  for (const file of ['Cargo.lock', 'worker/build.rs', 'worker/Cargo.toml', 'worker-protocol/Cargo.toml']) {
    assert.ok(WORKER_SOURCES.includes(join(ROOT, file)), file)
  }
})
