// The package's TypeScript view: a user's code type-checks against it, a
// misspelled error code does not, and the ErrorCode union lists exactly the
// codes the package can produce.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pw, ROOT } from './helpers.mjs'

test('TypeScript: usage type-checks, and a misspelled error code or option is a compile error', { timeout: 120_000 }, () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const r = spawnSync(process.execPath, [tsc, '-p', join(ROOT, '__test__', 'types', 'tsconfig.json')], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stdout + r.stderr)
})

test('the ErrorCode union in lib/index.d.ts lists exactly ERROR_CODES', () => {
  const dts = readFileSync(join(ROOT, 'lib', 'index.d.ts'), 'utf8')
  const union = dts.slice(dts.indexOf('export type ErrorCode ='), dts.indexOf('export interface PersistentWhisperError'))
  const declared = [...union.matchAll(/'(ERR_[A-Z_]+)'/g)].map((m) => m[1]).sort()
  assert.deepEqual(declared, [...pw.ERROR_CODES].sort())
  assert.ok(Object.isFrozen(pw.ERROR_CODES))
})
