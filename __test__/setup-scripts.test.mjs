// A newcomer's first command on a machine that lacks tools: set-up gets
// CMake itself (PyPI's pinned `cmake` wheel, into .whisper/) when the PATH
// has none or too old a one, and the set-up scripts (demo, setup, prepare)
// end a failure with one line that says what to do, never a stack. Needs
// Python with pip and, the first time, PyPI; not the addon.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmodSync, cpSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const T = { timeout: 600_000 }

/** A folder for PATH holding only node and Python (and whatever `extra` adds): no cmake, npm, cargo ... */
function barePath(extra = {}) {
  const bin = mkdtempSync(join(tmpdir(), 'pw-bare-path-'))
  symlinkSync(process.execPath, join(bin, 'node'))
  const python = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).stdout.trim()
  if (python) symlinkSync(python, join(bin, 'python3'))
  for (const [name, script] of Object.entries(extra)) {
    writeFileSync(join(bin, name), script)
    chmodSync(join(bin, name), 0o755)
  }
  return bin
}

/** What set-up's run('cmake', ...) runs, asked for its version, with this PATH. */
function setupCmakeVersion(path) {
  const provision = pathToFileURL(join(ROOT, 'scripts', 'provision.mjs')).href
  return spawnSync(process.execPath, ['--input-type=module', '-e', `import { output } from ${JSON.stringify(provision)}; console.log(output('cmake', ['--version']))`], {
    encoding: 'utf8',
    env: { ...process.env, PATH: path },
    timeout: 540_000,
  })
}

test('with no cmake on the PATH, set-up runs CMake from the pinned PyPI wheel, unpacked into .whisper/', T, () => {
  const r = setupCmakeVersion(barePath())
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stdout, /cmake version 3\.31\.10/)
})

test('a cmake on the PATH older than whisper.cpp needs is passed over for the wheel\'s', T, () => {
  // A FAKE cmake (fault injection): an old version on the PATH.
  const r = setupCmakeVersion(barePath({ cmake: '#!/bin/sh\necho "cmake version 3.10.2"\n' }))
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stdout, /cmake version 3\.31\.10/)
  assert.ok(!r.stdout.includes('3.10.2'), r.stdout)
})

test('demo, setup and prepare end a failure with one line that says what to do, no stack', T, () => {
  // A fresh copy of the scripts and sources (no node_modules, no .whisper) on a machine with only node.
  const root = mkdtempSync(join(tmpdir(), 'pw-fresh-clone-'))
  for (const dir of ['scripts', 'worker/src', 'worker-protocol/src']) cpSync(join(ROOT, dir), join(root, dir), { recursive: true })
  cpSync(join(ROOT, 'package.json'), join(root, 'package.json'))
  const path = barePath()
  for (const script of ['demo.mjs', 'setup.mjs', 'prepare.mjs']) {
    const r = spawnSync(process.execPath, [join(root, 'scripts', script)], { encoding: 'utf8', env: { ...process.env, PATH: path }, timeout: 60_000 })
    assert.equal(r.status, 1, `${script}: ${r.stderr}`)
    const lines = r.stderr.trim().split('\n')
    assert.equal(lines.length, 1, `${script}: ${r.stderr}`)
    assert.match(lines[0], /^\[\w+\] .* is not installed.*\binstall\b/i, script)
  }
})
