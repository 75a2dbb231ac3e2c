#!/usr/bin/env node
// npm test: prepares what is missing, then runs the Rust tests and the JS tests.
import { spawnSync } from 'node:child_process'
import { prepare } from './prepare.mjs'
import { ROOT } from './paths.mjs'

prepare()
let failed = false
for (const [cmd, args] of [
  ['cargo', ['test', '--workspace']],
  [process.execPath, ['--test', '--test-reporter=tap', '__test__/']],
]) {
  console.log(`\n> ${cmd === process.execPath ? 'node' : cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT })
  failed ||= r.status !== 0
}
process.exit(failed ? 1 : 0)
