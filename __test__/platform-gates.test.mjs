// The tests' own view of processes holds on every platform the release
// workflow runs them on: a check that cannot look must fail, not pass.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { isGone } from './processes.mjs'

test('isGone: false for a running process, true for one that has exited', () => {
  assert.equal(isGone(process.pid), false)
  const done = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' })
  assert.equal(isGone(Number(done.stdout.trim())), true)
})

const canHideProc = process.platform === 'linux' && spawnSync('unshare', ['-rm', 'true']).status === 0
test('isGone never calls a running process gone where /proc is missing (as on macOS)', { skip: !canHideProc && 'needs unshare -rm (Linux)' }, () => {
  // /proc hidden under an empty tmpfs in a mount namespace of this test's own.
  const probe = `import(${JSON.stringify(fileURLToPath(new URL('./processes.mjs', import.meta.url)))}).then(({ isGone }) => {
    let answer
    try { answer = isGone(process.pid) } catch (err) { answer = 'cannot tell: ' + err.message }
    console.log(JSON.stringify(answer))
  })`
  const r = spawnSync('unshare', ['-rm', 'sh', '-c', 'mount -t tmpfs none /proc && exec "$0" -e "$1"', process.execPath, probe], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  const answer = JSON.parse(r.stdout.trim())
  assert.notEqual(answer, true, 'a running process was called gone')
})
