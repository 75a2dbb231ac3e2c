#!/usr/bin/env node
// npm run package [-- --target <platform>]: fills the platform package
// npm/<platform>/ (the addon, whisper.cpp's programs for each CPU variant,
// licenses) from this machine's builds, and packs it and the main package
// into dist/. The main package's tarball lists every platform package as an
// optional dependency, as `napi prepublish` does at release.
import { cpSync, copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { pathToFileURL } from 'node:url'
import { buildAddon } from './build-addon.mjs'
import * as P from './paths.mjs'
import { log, output } from './provision.mjs'
import { prepare } from './prepare.mjs'
import { hostTarget, packageFiles, PUBLISHED, shippedVariants } from './targets.mjs'
import { buildWhisper } from './whisper-build.mjs'

const rootPackage = () => JSON.parse(readFileSync(join(P.ROOT, 'package.json'), 'utf8'))

function pack(dir) {
  mkdirSync(P.DIST, { recursive: true })
  const shell = process.platform === 'win32'
  const name = output('npm', ['pack', dir, '--pack-destination', P.DIST, '--silent'], { shell }).split('\n').pop()
  return join(P.DIST, name)
}

/** npm/<target>/ with the addon, the programs and the licenses, packed. */
export function packPlatform(target) {
  const addon = buildAddon(target)
  const built = buildWhisper(target)
  const dir = join(P.ROOT, 'npm', target)
  for (const generated of ['bin', `persistent-whisper.${target}.node`, 'LICENSE', 'LICENSE.whisper.cpp', 'THIRD-PARTY-NOTICES.md']) {
    rmSync(join(dir, generated), { recursive: true, force: true })
  }
  copyFileSync(addon, join(dir, `persistent-whisper.${target}.node`))
  // Only what the package ships: a CUDA build made for this machine stays out.
  for (const variant of shippedVariants(target)) {
    cpSync(join(built, 'bin', variant), join(dir, 'bin', variant), { recursive: true, filter: (src) => !src.endsWith('.inputs') })
  }
  copyFileSync(join(built, 'LICENSE.whisper.cpp'), join(dir, 'LICENSE.whisper.cpp'))
  copyFileSync(join(P.ROOT, 'LICENSE'), join(dir, 'LICENSE'))
  copyFileSync(join(P.ROOT, 'scripts', 'package', 'THIRD-PARTY-NOTICES.md'), join(dir, 'THIRD-PARTY-NOTICES.md'))
  checkListed(target, dir)
  return pack(dir)
}

/**
 * The package's `files` (napi prepublish checks each is a file) must list
 * exactly what the package holds: a file it misses would not be published,
 * one it names and lacks fails the release.
 */
export function checkListed(target, dir = join(P.ROOT, 'npm', target)) {
  const listed = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).files
  const expected = packageFiles(target)
  if (JSON.stringify(listed) !== JSON.stringify(expected)) {
    throw new Error(`npm/${target}/package.json lists ${JSON.stringify(listed)} in files; it must list ${JSON.stringify(expected)} (scripts/targets.mjs packageFiles)`)
  }
  const held = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && !['package.json', 'README.md'].includes(e.name))
    .map((e) => relative(dir, join(e.parentPath ?? e.path, e.name)).split(sep).join('/'))
  const missing = expected.filter((f) => !held.includes(f))
  const extra = held.filter((f) => !expected.includes(f))
  if (missing.length || extra.length) throw new Error(`npm/${target}: missing ${JSON.stringify(missing)}, not listed ${JSON.stringify(extra)}`)
}

/** The main package as it is published: its files, and every platform package as an optional dependency. */
export function packMain() {
  const pkg = rootPackage()
  const stage = join(P.DIST, 'stage', pkg.name)
  rmSync(stage, { recursive: true, force: true })
  mkdirSync(stage, { recursive: true })
  for (const file of [...pkg.files, 'README.md']) cpSync(join(P.ROOT, file), join(stage, file), { recursive: true })
  const { devDependencies, scripts, napi, ...published } = pkg
  published.optionalDependencies = Object.fromEntries(PUBLISHED.map((t) => [`${pkg.name}-${t}`, pkg.version]))
  writeFileSync(join(stage, 'package.json'), `${JSON.stringify(published, null, 2)}\n`)
  return pack(stage)
}

export function packageAll(target = hostTarget()) {
  prepare()
  const platform = packPlatform(target)
  const main = packMain()
  log(`packed ${main} and ${platform}`)
  return { main, platform }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--target')
  try {
    packageAll(i > 0 ? process.argv[i + 1] : undefined)
  } catch (err) {
    console.error(`[package] ${err.message}`)
    process.exit(1)
  }
}

