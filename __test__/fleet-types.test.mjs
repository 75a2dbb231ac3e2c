// The fleet module's TypeScript view: a producer and a host written against
// persistent-whisper/bullmq, resolved through the package's exports, type-check;
// the mistakes marked as expected errors do not.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { ROOT } from './helpers.mjs'

test('TypeScript: persistent-whisper/bullmq type-checks for a producer and a host', { timeout: 120_000 }, () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const r = spawnSync(process.execPath, [tsc, '-p', join(ROOT, '__test__', 'fleet-types', 'tsconfig.json')], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stdout + r.stderr)
})
