// The MSVC build's CMake configuration, seen from Linux: whisper.cpp
// configured for win32-x64-msvc with the release's flags, and the compile
// commands CMake would run (compile_commands.json). The compiler is never
// run (`/bin/false` stands in for cl.exe, and CMake is told what cl.exe would
// report), so this proves what CMake passes, not what MSVC does: enough to
// see that the C runtime setting (/MT) reaches every compile.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run } from './provision.mjs'
import { TARGETS, VARIANTS } from './targets.mjs'
import { COMMON_FLAGS, whisperSource } from './whisper-build.mjs'

/** A CMake toolchain file describing MSVC 19.38 (Visual Studio 2022) on x64, whose compiler cannot run. */
const toolchain = (never) => `# Written by scripts/msvc-configure.mjs: configure-only, never builds.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)
foreach(lang C CXX)
  set(CMAKE_\${lang}_COMPILER ${never})
  set(CMAKE_\${lang}_COMPILER_ID MSVC)
  set(CMAKE_\${lang}_COMPILER_VERSION 19.38.33130.0)
  set(CMAKE_\${lang}_COMPILER_ID_RUN TRUE)
  set(CMAKE_\${lang}_COMPILER_FORCED TRUE)
  set(CMAKE_\${lang}_COMPILER_WORKS TRUE)
  set(CMAKE_\${lang}_PLATFORM_ID Windows)
  set(CMAKE_\${lang}_COMPILER_ARCHITECTURE_ID x64)
endforeach()
set(CMAKE_C_STANDARD_COMPUTED_DEFAULT 17)
set(CMAKE_CXX_STANDARD_COMPUTED_DEFAULT 14)
set(CMAKE_C_COMPILE_FEATURES c_std_90 c_std_99 c_std_11 c_std_17)
foreach(std 90 99 11 17)
  set(CMAKE_C\${std}_COMPILE_FEATURES c_std_\${std})
endforeach()
set(CMAKE_CXX_COMPILE_FEATURES cxx_std_98 cxx_std_11 cxx_std_14 cxx_std_17 cxx_std_20)
foreach(std 98 11 14 17 20)
  set(CMAKE_CXX\${std}_COMPILE_FEATURES cxx_std_\${std})
endforeach()
set(MSVC 1)
set(MSVC_VERSION 1938)
set(MSVC_TOOLSET_VERSION 143)
set(CMAKE_SIZEOF_VOID_P 8)
foreach(tool LINKER AR MT RC_COMPILER)
  set(CMAKE_\${tool} ${never})
endforeach()
`

/**
 * The compile commands of whisper.cpp's programs for win32-x64-msvc's
 * `variant`, with exactly the flags scripts/whisper-build.mjs passes there
 * (but ccache), plus `extra` flags (a GPU build's) in `env`. Each: { file, command }.
 */
export function msvcCompileCommands(variant, { extra = [], env = process.env } = {}) {
  const target = 'win32-x64-msvc'
  const dir = mkdtempSync(join(tmpdir(), 'pw-msvc-configure-'))
  try {
    // A program that exits 1 at once, by its full path (CMake looks for a bare name with .exe here).
    const never = ['/bin/false', '/usr/bin/false'].find(existsSync)
    writeFileSync(join(dir, 'toolchain.cmake'), toolchain(never))
    const flags = ['-DGGML_NATIVE=OFF', ...TARGETS[target].cmake, ...VARIANTS[variant], ...extra]
    const build = join(dir, 'build')
    run('cmake', ['-S', whisperSource(), '-B', build, ...COMMON_FLAGS, '-DGGML_CCACHE=OFF', ...flags, `-DCMAKE_TOOLCHAIN_FILE=${join(dir, 'toolchain.cmake')}`, '-DCMAKE_EXPORT_COMPILE_COMMANDS=ON'], { stdio: 'ignore', env })
    return JSON.parse(readFileSync(join(build, 'compile_commands.json'), 'utf8')).map(({ file, command }) => ({ file, command }))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
