// require('persistent-whisper') on Windows when it cannot work: the Error
// says which platform this is and what to do, with a stable code.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { ROOT, scratch } from './common.mjs'

const dir = scratch('load')
after(() => rmSync(dir, { recursive: true, force: true }))

/** What require('persistent-whisper') throws in a fresh node.exe: { code, message } or { loaded }. */
function requireIn({ addon, preload } = {}) {
  const probe = join(dir, 'probe.cjs')
  writeFileSync(
    probe,
    `try { require(${JSON.stringify(ROOT)}); console.log(JSON.stringify({ loaded: true })) }
     catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message })) }`,
  )
  const env = { ...process.env }
  delete env.NAPI_RS_NATIVE_LIBRARY_PATH
  if (addon) env.NAPI_RS_NATIVE_LIBRARY_PATH = addon
  const r = spawnSync(process.execPath, [...(preload ? ['--require', preload] : []), probe], { env, encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 0, r.stderr)
  return JSON.parse(r.stdout.trim().split('\n').pop())
}

test('the addon loads here (the control for the cases below)', () => {
  assert.deepEqual(requireIn({ addon: process.env.NAPI_RS_NATIVE_LIBRARY_PATH }), { loaded: true })
})

test('no addon for this platform: ERR_ADDON_LOAD names the package to reinstall', () => {
  const got = requireIn()
  assert.equal(got.code, 'ERR_ADDON_LOAD', got.message)
  assert.match(got.message, /for win32-x64-msvc: the package persistent-whisper-win32-x64-msvc is missing or broken/)
  assert.match(got.message, /do not pass --omit=optional/)
  assert.match(got.message, /unpack it from the asar archive/)
})

test('a damaged addon (cut short): ERR_ADDON_LOAD with Windows\' own reason', () => {
  const damaged = join(dir, 'persistent-whisper.win32-x64-msvc.node')
  copyFileSync(process.env.NAPI_RS_NATIVE_LIBRARY_PATH, damaged)
  writeFileSync(damaged, readFileSync(damaged).subarray(0, 4096))
  const got = requireIn({ addon: damaged })
  assert.equal(got.code, 'ERR_ADDON_LOAD', got.message)
  assert.match(got.message, /persistent-whisper-win32-x64-msvc is missing or broken/)
  assert.match(got.message, /Cause: ./)
})

test('a platform without a package (32-bit Windows): ERR_UNSUPPORTED_PLATFORM names it and the supported ones', () => {
  // FAKE, for fault injection: a preload that makes this x64 node.exe report
  // ia32 (Wine here runs 64-bit programs only).
  const fake = join(dir, 'fake-ia32.cjs')
  writeFileSync(fake, "Object.defineProperty(process, 'arch', { value: 'ia32' })\n")
  const got = requireIn({ addon: process.env.NAPI_RS_NATIVE_LIBRARY_PATH, preload: fake })
  assert.equal(got.code, 'ERR_UNSUPPORTED_PLATFORM', got.message)
  assert.match(got.message, /does not support this platform \(win32-ia32-msvc\)/)
  assert.match(got.message, /win32-x64-msvc/)
})
