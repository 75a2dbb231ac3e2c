// The compilers for the win32-x64-gnu build: Debian's mingw-w64 (GCC 12,
// the posix thread model, which C++'s std::thread needs) for whisper.cpp,
// the worker's shim and the linking of Rust's x86_64-pc-windows-gnu target.
// Releases ship the MSVC build (win32-x64-msvc, made on Windows by the
// release workflow); this one is how a Linux checkout builds the Windows
// code and runs it under Wine (scripts/wine.mjs) on every change.
//
// windowsToolchain() returns { id, cc, cxx, cmake, env } like
// linuxToolchain(), provisioned once into .whisper/toolchains/<triple>/.
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as P from './paths.mjs'
import { contentOf, output, run, stamped } from './provision.mjs'

export const WINDOWS_GNU = 'x86_64-pc-windows-gnu'
const PREFIX = 'x86_64-w64-mingw32'
export const MINGW_CC = `${PREFIX}-gcc-posix`
export const MINGW_CXX = `${PREFIX}-g++-posix`
export const MINGW_INSTALL = 'apt-get install gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64'

/**
 * mingw-w64 10 (Debian 12) lacks THREAD_POWER_THROTTLING_STATE, which
 * ggml-cpu.c uses on Windows 8 and later; newer mingw-w64 headers have it.
 * Forced into every C file, before <windows.h>, only where the compiler
 * lacks it (a probe below): it needs no header itself.
 */
const COMPAT_HEADER = `/* Written by scripts/windows-toolchain.mjs: what mingw-w64 10's headers lack. */
#pragma once
typedef struct _THREAD_POWER_THROTTLING_STATE {
  unsigned long Version;
  unsigned long ControlMask;
  unsigned long StateMask;
} THREAD_POWER_THROTTLING_STATE;
#define THREAD_POWER_THROTTLING_CURRENT_VERSION 1
#define THREAD_POWER_THROTTLING_EXECUTION_SPEED 0x1
`

/** Whether mingw's own headers declare what ggml-cpu.c needs. */
function headersHaveThrottling() {
  const probe = spawnSync(MINGW_CC, ['-x', 'c', '-fsyntax-only', '-'], {
    input: '#include <windows.h>\nTHREAD_POWER_THROTTLING_STATE t = { THREAD_POWER_THROTTLING_CURRENT_VERSION };\n',
    encoding: 'utf8',
  })
  return probe.status === 0
}

/** Fails with the install command when mingw-w64 is missing. */
function requireMingw() {
  const found = spawnSync(MINGW_CXX, ['--version'], { stdio: 'ignore' })
  if (found.error || found.status !== 0) {
    throw new Error(`${MINGW_CXX} is not installed: the Windows build (win32-x64-gnu) needs mingw-w64 (${MINGW_INSTALL})`)
  }
}

/**
 * The toolchain for x86_64-pc-windows-gnu: a CMake toolchain file, the
 * compatibility header, and the stand-in libnode.dll that napi-build asks
 * for (napi-rs resolves the Node-API functions at run time, so the import
 * library only has to exist). Programs link libstdc++, libgcc and
 * winpthreads statically: nothing but system DLLs beside them.
 */
export function windowsToolchain() {
  requireMingw()
  const dir = join(P.HOME, 'toolchains', WINDOWS_GNU)
  const version = output(MINGW_CXX, ['-dumpversion'])
  const inputs = [version, contentOf(new URL(import.meta.url))]
  const toolchainFile = join(dir, 'toolchain.cmake')
  const compat = join(dir, 'include', 'mingw-compat.h')
  const libnode = join(dir, 'libnode')
  stamped(dir, inputs, () => {
    mkdirSync(join(dir, 'include'), { recursive: true })
    mkdirSync(libnode, { recursive: true })
    const needsCompat = !headersHaveThrottling()
    writeFileSync(compat, needsCompat ? COMPAT_HEADER : '/* mingw-w64 has everything: nothing to add. */\n')
    writeFileSync(
      toolchainFile,
      [
        '# Written by scripts/windows-toolchain.mjs: whisper.cpp for Windows with mingw-w64.',
        'set(CMAKE_SYSTEM_NAME Windows)',
        'set(CMAKE_SYSTEM_PROCESSOR AMD64)',
        `set(CMAKE_C_COMPILER ${MINGW_CC})`,
        `set(CMAKE_CXX_COMPILER ${MINGW_CXX})`,
        `set(CMAKE_RC_COMPILER ${PREFIX}-windres)`,
        `set(CMAKE_FIND_ROOT_PATH /usr/${PREFIX})`,
        'set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)',
        'set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)',
        'set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)',
        `set(CMAKE_C_FLAGS_INIT "-include ${compat}")`,
        'set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -s")',
        '',
      ].join('\n'),
    )
    const def = join(libnode, 'node.def')
    writeFileSync(def, 'LIBRARY node.exe\nEXPORTS\n  napi_module_register\n')
    // napi-build checks that a file named libnode.dll exists and links -lnode,
    // which GNU ld resolves to it: an import library under that name does.
    run(`${PREFIX}-dlltool`, ['-d', def, '-l', join(libnode, 'libnode.dll')])
  })
  const triple = WINDOWS_GNU.replaceAll('-', '_')
  return {
    /** Changes whenever the toolchain would build differently. */
    id: inputs,
    cc: MINGW_CC,
    cxx: MINGW_CXX,
    cmake: [`-DCMAKE_TOOLCHAIN_FILE=${toolchainFile}`],
    env: {
      // Rust links with g++ so that the shim's C++ runtime comes along, statically.
      [`CARGO_TARGET_${triple.toUpperCase()}_LINKER`]: MINGW_CXX,
      [`CARGO_TARGET_${triple.toUpperCase()}_RUSTFLAGS`]: '-C link-arg=-static -C link-arg=-s',
      [`CC_${triple}`]: MINGW_CC,
      [`CXX_${triple}`]: MINGW_CXX,
      [`AR_${triple}`]: `${PREFIX}-ar`,
      LIBNODE_PATH: libnode,
    },
  }
}
