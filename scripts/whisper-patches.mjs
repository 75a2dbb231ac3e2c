// This project's changes to whisper.cpp: a series of `git format-patch`
// files in patches/whisper.cpp/, each with its reason in its message,
// written so that each could be proposed upstream. They are applied with
// `git apply --3way` to the unpacked source, which is committed first, so
// that a patch whose context moved still merges (and one that conflicts
// fails the build, naming itself). `PW_WHISPER_PATCHES=off` (or
// whisperSource({ stock: true })) leaves whisper.cpp as it is: the worker
// program builds against stock whisper.cpp too, without the optional
// changes, and says so in its status.
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './paths.mjs'
import { run } from './provision.mjs'

export const PATCH_DIR = join(ROOT, 'patches', 'whisper.cpp')
/** Records, in the source tree, which series was applied. */
const APPLIED = '.persistent-whisper-patches'

/** The series, in order: file names and contents. */
export function patchSeries() {
  return readdirSync(PATCH_DIR)
    .filter((f) => f.endsWith('.patch'))
    .sort()
    .map((name) => ({ name, path: join(PATCH_DIR, name), text: readFileSync(join(PATCH_DIR, name), 'utf8') }))
}

/** What identifies a series: a change to any patch rebuilds what depends on it. */
export function seriesKey(stock) {
  if (stock) return 'stock'
  const hash = createHash('sha256')
  for (const p of patchSeries()) hash.update(p.name).update('\0').update(p.text)
  return hash.digest('hex')
}

/** Whether `src` holds exactly this series (or, for stock, none). */
export function hasSeries(src, stock) {
  const file = join(src, APPLIED)
  return existsSync(file) && readFileSync(file, 'utf8') === seriesKey(stock)
}

const git = (src, args) =>
  run('git', ['-c', 'user.name=persistent-whisper', '-c', 'user.email=build@persistent-whisper.invalid', '-c', 'core.autocrlf=false', ...args], { cwd: src })

/** Applies the series to a freshly unpacked tree at `src` (or records stock). */
export function applySeries(src, stock) {
  if (!stock) {
    git(src, ['init', '--quiet'])
    git(src, ['add', '--all'])
    git(src, ['commit', '--quiet', '--no-verify', '-m', 'whisper.cpp as unpacked'])
    for (const patch of patchSeries()) {
      try {
        git(src, ['apply', '--3way', '--whitespace=nowarn', patch.path])
      } catch (err) {
        throw new Error(`${patch.name} does not apply to ${src}: ${err.message}`)
      }
    }
  }
  writeFileSync(join(src, APPLIED), seriesKey(stock))
}
