// Builds the native addon for a platform package's target: the release
// profile, and on Linux the glibc 2.17 toolchain (scripts/toolchain.mjs), so
// the addon a checkout tests is the one the package ships.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import * as P from './paths.mjs'
import { log, run } from './provision.mjs'
import { hostTarget, TARGETS } from './targets.mjs'
import { toolchainFor } from './whisper-build.mjs'

export const addonFile = (target) => join(P.ROOT, `persistent-whisper.${target}.node`)

function newestMtime(dir) {
  return readdirSync(dir, { withFileTypes: true }).reduce((newest, entry) => {
    const p = join(dir, entry.name)
    return Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs)
  }, 0)
}

/** Builds the addon for `target` when it is missing or older than the Rust sources (its own and the protocol crate's). */
export function buildAddon(target = hostTarget()) {
  const file = addonFile(target)
  const sources = Math.max(
    newestMtime(join(P.ROOT, 'src')),
    newestMtime(join(P.ROOT, 'worker-protocol', 'src')),
    statSync(join(P.ROOT, 'Cargo.toml')).mtimeMs,
  )
  if (existsSync(file) && statSync(file).mtimeMs >= sources) return file
  const { triple } = TARGETS[target]
  const env = { ...process.env, ...(toolchainFor(target).env ?? {}) }
  if (target !== hostTarget()) run('rustup', ['target', 'add', triple])
  log(`building the native addon for ${target} (napi build --release)`)
  run('npx', ['napi', 'build', '--platform', '--release', '--target', triple], { env, shell: process.platform === 'win32' })
  return file
}
