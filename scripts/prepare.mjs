// What `npm run demo` and `npm test` need on a fresh clone, each step skipped
// when already done: npm dependencies, the native addon, and `npm run setup`.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './paths.mjs'
import { setup } from './setup.mjs'

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, shell: process.platform === 'win32' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`)
}

function newestMtime(dir) {
  return readdirSync(dir, { withFileTypes: true }).reduce((newest, entry) => {
    const p = join(dir, entry.name)
    return Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs)
  }, 0)
}

function addonFile() {
  return readdirSync(ROOT).find((f) => f.startsWith('persistent-whisper.') && f.endsWith('.node'))
}

export function ensureDependencies() {
  if (!existsSync(join(ROOT, 'node_modules', '@napi-rs', 'cli'))) run('npm', ['install', '--no-audit', '--no-fund'])
}

/** Builds the addon when it is missing or older than the Rust sources. */
export function ensureAddon() {
  const addon = addonFile()
  const sources = Math.max(newestMtime(join(ROOT, 'src')), statSync(join(ROOT, 'Cargo.toml')).mtimeMs)
  if (addon && statSync(join(ROOT, addon)).mtimeMs >= sources) return
  console.log('[prepare] building the native addon (napi build --release)')
  run('npx', ['napi', 'build', '--platform', '--release'])
}

export function prepare() {
  ensureDependencies()
  ensureAddon()
  setup()
}
