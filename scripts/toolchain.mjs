// Compilers for the Linux packages. Every Linux ELF file shipped must run on
// glibc 2.17 (RHEL 7 and later), so programs and the addon are compiled with
// Debian's GCC 12 against the glibc 2.17 sysroot of napi-rs's cross toolchain
// (npm @napi-rs/cross-toolchain-*), with libstdc++ and libgomp linked
// statically. The same toolchain builds the host's x86-64 package and
// cross-compiles arm64 (apt-get install g++-aarch64-linux-gnu).
//
// linuxToolchain(target) returns { cc, cxx, env, cmake } for a linux-*-gnu
// target; other platforms build with their system's compilers.
import { spawnSync } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as P from './paths.mjs'
import { contentOf, log, npmTarball, output, run, stamped } from './provision.mjs'
import { TARGETS } from './targets.mjs'

/** The glibc 2.17 sysroots, from napi-rs's cross toolchains (for x86-64 hosts). */
const SYSROOTS = {
  'x86_64-unknown-linux-gnu': {
    spec: '@napi-rs/cross-toolchain-x64-target-x86_64@1.0.0',
    file: 'napi-rs-cross-toolchain-x64-target-x86_64-1.0.0.tgz',
    sha256: '351f6ee9bc8e444dfb8ac6eddfe9daed02c9508399bd20c511e3f9e027d6e988',
    gcc: 'gcc',
    gxx: 'g++',
  },
  'aarch64-unknown-linux-gnu': {
    spec: '@napi-rs/cross-toolchain-x64-target-aarch64@1.0.3',
    file: 'napi-rs-cross-toolchain-x64-target-aarch64-1.0.3.tgz',
    sha256: '8ec59a37c2a8cac720d0f92e9c19b2940a427ef1f32ddde43e800a8043301e51',
    gcc: 'aarch64-linux-gnu-gcc-12',
    gxx: 'aarch64-linux-gnu-g++-12',
    cmakeProcessor: 'aarch64',
  },
}

/** The GCC 4.8 runtime libraries in those sysroots; GCC 12's own are used instead. */
const OLD_GCC_LIBS = /^lib(stdc\+\+|supc\+\+|gomp|atomic|itm|quadmath|asan|tsan|lsan|ubsan)[.-]/

const COMPAT_SOURCE = join(P.ROOT, 'scripts', 'toolchain', 'glibc-compat.c')

export const isLinuxGnu = (target) => target.startsWith('linux-') && target.endsWith('-gnu')

function unpackSysroot(triple, dir) {
  const source = SYSROOTS[triple]
  const tgz = npmTarball(source.spec, source.file, source.sha256)
  const scratch = join(dir, 'unpack')
  rmSync(scratch, { recursive: true, force: true })
  mkdirSync(scratch, { recursive: true })
  log(`unpacking the glibc 2.17 sysroot for ${triple}`)
  run('tar', ['-xzf', tgz, '-C', scratch, `package/${triple}.tar.xz`])
  run('tar', ['-xJf', join(scratch, 'package', `${triple}.tar.xz`), '-C', scratch, `./${triple}/sysroot`])
  const sysroot = join(dir, 'sysroot')
  rmSync(sysroot, { recursive: true, force: true })
  cpSync(join(scratch, triple, 'sysroot'), sysroot, { recursive: true, verbatimSymlinks: true })
  rmSync(scratch, { recursive: true, force: true })
  for (const sub of ['lib', 'lib64', 'usr/lib', 'usr/lib64']) {
    const d = join(sysroot, sub)
    if (!existsSync(d)) continue
    for (const f of readdirSync(d)) if (OLD_GCC_LIBS.test(f)) rmSync(join(d, f), { force: true })
  }
}

/**
 * libstdc++'s configuration header was written for the glibc GCC 12 was
 * built against. A copy, earlier on the include path, states glibc 2.17's
 * truth: no pthread_*_clock* functions (glibc 2.30), and its own isinf and
 * isnan declarations (before glibc 2.23), which libstdc++ must reuse.
 */
function libstdcxxOverlay(gxx, dir) {
  const probe = spawnSync(gxx, ['-x', 'c++', '-E', '-H', '-'], { input: '#include <bits/c++config.h>\n', encoding: 'utf8' })
  const original = /^\. (\S+c\+\+config\.h)$/m.exec(probe.stderr)?.[1]
  if (!original) throw new Error(`${gxx}: cannot find bits/c++config.h`)
  const patched = readFileSync(original, 'utf8')
    .replace(/^#define (_GLIBCXX_USE_PTHREAD_(COND_CLOCKWAIT|MUTEX_CLOCKLOCK|RWLOCK_CLOCKLOCK)) 1$/gm, '/* #undef $1: glibc 2.17 */')
    .replace(/^\/\* #undef (_GLIBCXX_HAVE_OBSOLETE_IS(INF|NAN)) \*\/$/gm, '#define $1 1')
  const overlay = join(dir, 'include')
  mkdirSync(join(overlay, 'bits'), { recursive: true })
  writeFileSync(join(overlay, 'bits', 'c++config.h'), patched)
  return overlay
}

/**
 * The compiler's include folders with the sysroot's glibc headers in place of
 * the build machine's: Debian's cross compilers put their own (newer) glibc
 * headers ahead of the sysroot, which would let code call functions glibc
 * 2.17 lacks. Returns -nostdinc and each folder in the compiler's order.
 */
function includeFlags(compiler, language, sysroot) {
  const probe = spawnSync(compiler, [`--sysroot=${sysroot}`, '-x', language, '-E', '-v', '-'], { input: '', encoding: 'utf8' })
  const list = probe.stderr.split('#include <...> search starts here:')[1]?.split('End of search list.')[0]
  if (!list) throw new Error(`${compiler}: cannot read its include folders`)
  const dirs = list
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((d) => realpathSync(d))
    // The compiler's own headers (libstdc++, intrinsics) and the sysroot's; not another libc's.
    .filter((d) => d.startsWith(sysroot) || /\/c\+\+\//.test(d) || /\/lib\/gcc(-cross)?\/[^/]+\/\d+\/include$/.test(d))
  return ['-nostdinc', ...dirs.flatMap((d) => ['-isystem', d])]
}

function wrapper(file, lines) {
  writeFileSync(file, `#!/bin/sh\n${lines.join('\n')}\n`)
  chmodSync(file, 0o755)
}

/**
 * The toolchain for a linux-*-gnu target, provisioned once into
 * .whisper/toolchains/<triple>/: the sysroot, a static libgomp, the glibc
 * compatibility object, and `cc` / `c++` wrappers that use them.
 */
export function linuxToolchain(target) {
  const { triple } = TARGETS[target]
  const source = SYSROOTS[triple]
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`the Linux packages are built on an x86-64 Linux machine; this is ${process.platform}-${process.arch}`)
  }
  const dir = join(P.HOME, 'toolchains', triple)
  const cc = join(dir, 'bin', 'cc')
  const cxx = join(dir, 'bin', 'c++')
  const inputs = [source, contentOf(COMPAT_SOURCE, new URL(import.meta.url))]
  stamped(dir, inputs, () => {
    unpackSysroot(triple, dir)
    const sysroot = join(dir, 'sysroot')
    // Only libgomp.a in this folder, so that -lgomp links it statically.
    const gomp = join(dir, 'gomp')
    mkdirSync(gomp, { recursive: true })
    cpSync(output(source.gcc, ['-print-file-name=libgomp.a']), join(gomp, 'libgomp.a'))
    const libDirs = ['lib', 'lib64', 'usr/lib', 'usr/lib64'].map((d) => join(sysroot, d)).filter(existsSync)
    const quote = (flags) => flags.map((f) => `'${f}'`).join(' ')
    const flags = quote([`--sysroot=${sysroot}`, ...libDirs.flatMap((d) => [`-B${d}`, `-L${d}`])])
    const cFlags = `${flags} ${quote(includeFlags(source.gcc, 'c', sysroot))}`
    mkdirSync(join(dir, 'bin'), { recursive: true })
    const compat = join(dir, 'glibc-compat.o')
    // Linking: libgomp statically here too (CMake's OpenMP check links C), and
    // libdl after it: glibc 2.17 keeps there the dlopen that libgomp.a calls.
    wrapper(cc, [
      'for arg in "$@"; do',
      `  case "$arg" in -c|-S|-E|-M|-MM) exec ${source.gcc} ${cFlags} "$@" ;; esac`,
      'done',
      `exec ${source.gcc} ${cFlags} '-L${gomp}' "$@" -lgomp -ldl -lpthread`,
    ])
    run(cc, ['-O2', '-fPIC', '-c', COMPAT_SOURCE, '-o', compat])
    const cxxFlags = `${flags} '-isystem${libstdcxxOverlay(source.gxx, dir)}' ${quote(includeFlags(source.gxx, 'c++', sysroot))}`
    wrapper(cxx, [
      '# Compiling: the sysroot only. Linking: libstdc++ and libgomp statically,',
      '# plus the stand-ins for the glibc symbols that libstdc++ 12 expects; stripped.',
      'for arg in "$@"; do',
      `  case "$arg" in -c|-S|-E|-M|-MM) exec ${source.gxx} ${cxxFlags} "$@" ;; esac`,
      'done',
      `exec ${source.gxx} ${cxxFlags} '-L${gomp}' "$@" -s -static-libstdc++ '${compat}' -lgomp -ldl -lpthread -lrt`,
    ])
  })
  const upper = triple.toUpperCase().replaceAll('-', '_')
  return {
    /** Changes whenever the toolchain would build differently. */
    id: inputs,
    cc,
    cxx,
    cmake: [
      `-DCMAKE_C_COMPILER=${cc}`,
      `-DCMAKE_CXX_COMPILER=${cxx}`,
      ...(source.cmakeProcessor ? ['-DCMAKE_SYSTEM_NAME=Linux', `-DCMAKE_SYSTEM_PROCESSOR=${source.cmakeProcessor}`] : []),
    ],
    /** For cargo: the linker of the target, and cc-rs's compilers. */
    env: {
      [`CARGO_TARGET_${upper}_LINKER`]: cc,
      [`CC_${triple.replaceAll('-', '_')}`]: cc,
      [`CXX_${triple.replaceAll('-', '_')}`]: cxx,
    },
  }
}
