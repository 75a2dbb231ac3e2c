// What `npm run demo` and `npm test` need on a fresh clone, each step skipped
// when already done: npm dependencies, the native addon, and `npm run setup`.
// On an x86-64 Linux machine, also the linux-arm64-gnu package's addon and
// programs, which the tests check under qemu, and the Windows ones
// (win32-x64-gnu), which they run under Wine.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { buildAddon } from './build-addon.mjs'
import { ROOT } from './paths.mjs'
import { main, run } from './provision.mjs'
import { setup } from './setup.mjs'
import { hostTarget } from './targets.mjs'
import { buildStock, buildWhisper } from './whisper-build.mjs'
import { winePrefix, windowsNode } from './wine.mjs'

export function ensureDependencies() {
  if (!existsSync(join(ROOT, 'node_modules', '@napi-rs', 'cli'))) {
    run('npm', ['install', '--no-audit', '--no-fund'], { shell: process.platform === 'win32' })
  }
}

/**
 * The targets built on this machine besides its own: on x86-64 Linux, arm64
 * (tested under qemu) and Windows (mingw-w64, tested under Wine).
 */
export const crossTargets = () => (hostTarget() === 'linux-x64-gnu' ? ['linux-arm64-gnu', 'win32-x64-gnu'] : [])

export function prepare({ cross = false } = {}) {
  ensureDependencies()
  buildAddon()
  setup()
  if (cross) {
    for (const target of crossTargets()) {
      buildWhisper(target)
      buildAddon(target)
    }
    // Windows runs here under Wine: its prefix and node.exe, made once.
    if (crossTargets().includes('win32-x64-gnu')) {
      winePrefix()
      windowsNode()
    }
    // The tests also run the worker on stock whisper.cpp (no patch series).
    buildStock()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) main('prepare', () => prepare({ cross: process.argv.includes('--cross') }))
