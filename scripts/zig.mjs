// Zig's C/C++ compiler (clang, with the headers of every libc Zig targets,
// macOS's among them), from PyPI's `ziglang` wheel, pinned by sha256 and
// unpacked once into .whisper/zig/<version>/. It lets a Linux checkout
// compile the C++ of the macOS build (scripts/macos-compile.mjs); macOS's
// frameworks (Metal, Accelerate) are not in it.
import { chmodSync, existsSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import * as P from './paths.mjs'
import { fetchCached, log, python, run } from './provision.mjs'

export const ZIG_WHEEL = {
  spec: 'ziglang==0.17.0',
  version: '0.17.0',
  file: 'ziglang-0.17.0-py3-none-manylinux_2_12_x86_64.manylinux2010_x86_64.musllinux_1_1_x86_64.whl',
  sha256: '97079827064a7492cce5541ceb438ae8003ce1e54e399676da2d62fb7a5dc08b',
}

/** The zig program (x86-64 Linux only: the wheel pinned here is that one's). */
export function zig() {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`the pinned zig is for x86-64 Linux; this is ${process.platform}-${process.arch}`)
  const dir = join(P.HOME, 'zig', ZIG_WHEEL.version)
  const exe = join(dir, 'ziglang', 'zig')
  if (existsSync(exe)) return exe
  const wheel = fetchCached(ZIG_WHEEL.file, ZIG_WHEEL.sha256, () =>
    run(python(), ['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', '--disable-pip-version-check', '--platform', 'manylinux2010_x86_64', '-d', P.CACHE, ZIG_WHEEL.spec]),
  )
  log(`unpacking zig ${ZIG_WHEEL.version}`)
  // Unpacked beside, then renamed: an interrupted unpack is never taken for a whole one.
  const partial = `${dir}.partial`
  rmSync(partial, { recursive: true, force: true })
  run(python(), ['-m', 'zipfile', '-e', wheel, partial])
  chmodSync(join(partial, 'ziglang', 'zig'), 0o755) // zipfile does not keep the executable bit
  rmSync(dir, { recursive: true, force: true })
  renameSync(partial, dir)
  return exe
}
