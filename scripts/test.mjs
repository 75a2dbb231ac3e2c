#!/usr/bin/env node
// npm test: prepares what is missing (the addon, whisper.cpp, the models, and
// on x86-64 Linux the arm64 package too), then runs the Rust tests, type-checks
// the code for macOS and Windows, and runs the JS tests.
import { spawnSync } from 'node:child_process'
import { prepare } from './prepare.mjs'
import { ROOT } from './paths.mjs'

/** Code for these systems cannot run here; `cargo check` proves it compiles. */
const CHECKED_TARGETS = ['x86_64-apple-darwin', 'aarch64-apple-darwin', 'x86_64-pc-windows-msvc']

prepare({ cross: true })
const steps = [
  ['cargo', ['test', '--workspace']],
  ['rustup', ['target', 'add', ...CHECKED_TARGETS]],
  ...CHECKED_TARGETS.map((t) => ['cargo', ['check', '--lib', '--target', t]]),
  [process.execPath, ['--test', '--test-reporter=tap', '__test__/']],
]
let failed = false
for (const [cmd, args] of steps) {
  console.log(`\n> ${cmd === process.execPath ? 'node' : cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT })
  failed ||= r.status !== 0
}
process.exit(failed ? 1 : 0)
