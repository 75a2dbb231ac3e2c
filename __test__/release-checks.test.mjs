// What the release workflow's first run would trip on, caught here before a
// tag can: the scripts it runs on Windows, the packages napi prepublish
// checks, the CMake settings of the MSVC build.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ROOT } from '../scripts/paths.mjs'

const onLinux = { skip: process.platform !== 'linux' && 'builds its fixtures with Linux tools' }

test('whisper.cpp\'s source unpacks without a tar program (Git\'s tar on Windows reads D:\\ as a host)', onLinux, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pw-untar-'))
  try {
    mkdirSync(join(dir, 'src', 'package', 'cpp', 'whisper.cpp', 'src'), { recursive: true })
    writeFileSync(join(dir, 'src', 'package', 'cpp', 'whisper.cpp', 'src', 'whisper.cpp'), 'int whisper;\n')
    writeFileSync(join(dir, 'src', 'package', 'README.md'), 'not this\n')
    assert.equal(spawnSync('tar', ['-czf', join(dir, 'w.tgz'), '-C', join(dir, 'src'), 'package']).status, 0)
    // FAKE, for fault injection: a `tar` first on the PATH that fails, as
    // Git's does on a path with a drive letter.
    mkdirSync(join(dir, 'bin'))
    writeFileSync(join(dir, 'bin', 'tar'), '#!/bin/sh\necho "tar: Cannot connect to D: resolve failed" >&2\nexit 2\n')
    chmodSync(join(dir, 'bin', 'tar'), 0o755)
    const script = `import(${JSON.stringify(join(ROOT, 'scripts', 'whisper-build.mjs'))}).then((m) => m.unpackTree(${JSON.stringify(join(dir, 'w.tgz'))}, 'package/cpp/whisper.cpp', ${JSON.stringify(join(dir, 'out'))}))`
    const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}` }, encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    assert.equal(readFileSync(join(dir, 'out', 'src', 'whisper.cpp'), 'utf8'), 'int whisper;\n')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
