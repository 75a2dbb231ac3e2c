#!/usr/bin/env node
// npm test: prepares what is missing (the addon, whisper.cpp, the models, and
// on x86-64 Linux the arm64 and Windows packages too), then runs the Rust
// tests, type-checks the code and the tests for macOS and Windows, and runs
// the JS tests.
import { spawnSync } from 'node:child_process'
import { pathToFileURL } from 'node:url'
import { prepare } from './prepare.mjs'
import { ROOT } from './paths.mjs'
import { TARGETS, hostTarget } from './targets.mjs'

/** Code for these systems cannot run here; `cargo check` proves it and its tests compile. */
const CHECKED_TARGETS = ['x86_64-apple-darwin', 'aarch64-apple-darwin', 'x86_64-pc-windows-msvc']

/**
 * `cargo test`'s arguments. Where Node runs for another CPU than cargo's
 * own (an x64 Node under Rosetta 2 on Apple silicon), the tests build for
 * Node's target: the worker links the whisper.cpp build made for it.
 */
export function cargoTestArgs(rustHost, nodeTarget) {
  const triple = TARGETS[nodeTarget].triple
  return ['test', '--workspace', ...(rustHost === triple ? [] : ['--target', triple])]
}

/** The target rustc builds for by default. */
const rustHost = () => /^host: (.+)$/m.exec(spawnSync('rustc', ['-vV'], { encoding: 'utf8' }).stdout ?? '')?.[1]

function main() {
  prepare({ cross: true })
  // The worker's build script neither compiles nor links for a checked target.
  const checkEnv = { ...process.env, PW_WORKER_CHECK_ONLY: '1', RUSTFLAGS: '-D warnings' }
  const steps = [
    ['cargo', cargoTestArgs(rustHost(), hostTarget())],
    ['rustup', ['target', 'add', ...CHECKED_TARGETS]],
    ...CHECKED_TARGETS.map((t) => ['cargo', ['check', '--workspace', '--tests', '--target', t], checkEnv]),
    [process.execPath, ['--test', '--test-reporter=tap', '__test__/']],
  ]
  let failed = false
  for (const [cmd, args, env] of steps) {
    console.log(`\n> ${cmd === process.execPath ? 'node' : cmd} ${args.join(' ')}`)
    const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, env: env ?? process.env })
    failed ||= r.status !== 0
  }
  process.exit(failed ? 1 : 0)
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) main()
