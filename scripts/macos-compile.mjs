// The macOS build's C++, compiled here for aarch64-macos with zig c++
// (scripts/zig.mjs): whisper.cpp with this project's patch series (the only
// files the series touches), the worker's shim, and the C++ half of ggml's
// Metal backend. Objective-C (ggml-metal's .m files) and anything that needs
// Apple's frameworks cannot be compiled here; nothing is linked or run.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { spawnSync } from 'node:child_process'
import * as P from './paths.mjs'
import { whisperSource } from './whisper-build.mjs'
import { zig } from './zig.mjs'

/**
 * Compiles each file for `target` (aarch64-macos) to an object in a scratch
 * folder; `include` is the folder of the generated pw_decoding.h (cargo's
 * OUT_DIR of the worker). Returns [{ file, ok, stderr }].
 */
export function compileForMacos(include, target = 'aarch64-macos') {
  const src = whisperSource()
  const units = [
    { file: join(src, 'src', 'whisper.cpp'), flags: ['-DWHISPER_VERSION="1.9.1"', '-DGGML_USE_METAL', `-I${join(src, 'include')}`, `-I${join(src, 'ggml', 'include')}`] },
    ...['shim.cpp', 'devices.cpp'].map((f) => ({
      file: join(P.ROOT, 'worker', 'src', f),
      flags: [`-I${include}`, `-I${join(src, 'include')}`, `-I${join(src, 'ggml', 'include')}`, `-I${join(src, 'examples')}`],
    })),
    ...['ggml-metal.cpp', 'ggml-metal-device.cpp', 'ggml-metal-ops.cpp', 'ggml-metal-common.cpp'].map((f) => ({
      file: join(src, 'ggml', 'src', 'ggml-metal', f),
      flags: ['-DGGML_USE_METAL', `-I${join(src, 'ggml', 'include')}`, `-I${join(src, 'ggml', 'src')}`],
    })),
  ]
  return units.map(({ file, flags }) => zigCompile(target, file, flags))
}

/** One C++ file compiled for `target` to an object that is thrown away: { file, ok, stderr }. */
export function zigCompile(target, file, flags = []) {
  const out = mkdtempSync(join(tmpdir(), 'pw-zig-compile-'))
  try {
    // A full compile to an object: zig 0.17's -fsyntax-only fails on success.
    const r = spawnSync(zig(), ['c++', '-target', target, '-std=c++17', '-O0', '-w', '-c', '-o', join(out, `${basename(file)}.o`), ...flags, file], { encoding: 'utf8' })
    return { file, ok: r.status === 0, stderr: r.stderr }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}
