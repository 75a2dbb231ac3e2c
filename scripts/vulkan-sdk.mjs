// What the Vulkan build of whisper.cpp compiles against. ggml's Vulkan
// backend needs the Vulkan headers (vulkan.hpp 1.4: Debian 12's 1.3.239 lack
// vk::LayerSettingEXT), the SPIR-V headers, the loader's link library and
// glslc, which turns its shaders into SPIR-V. Debian's own archive has them:
// glslc from Debian 12 (apt-get install glslc), and libvulkan-dev,
// libvulkan1 and spirv-headers 1.4.309 from Debian 13 (trixie), fetched with
// apt-get download through a private apt configuration (the system's sources
// stay as they are), pinned by sha256 and unpacked into
// .whisper/vulkan-sdk/. Nothing is installed.
//
// The programs link to the loader by name, which the graphics driver
// provides on the user's machine: libvulkan.so.1 on Linux, vulkan-1.dll on
// Windows. The Linux ones link against a stub of it built with the target's
// own compiler, exporting the functions the real loader exports (read from
// Debian's libvulkan1): the real one is built for a newer glibc than the
// packages' 2.17, which the linker rightly refuses. The Windows build
// (win32-x64-gnu, mingw-w64) links against an import library of
// vulkan-1.dll made by dlltool from the same names.
//
// glslc runs through a cache (scripts/vulkan/glslc-cached.sh, in
// .whisper/cache/glslc/): a second Vulkan build (Linux, then Windows)
// compiles no shader again.
//
// On Windows itself (the release's win32-x64-msvc build) the LunarG Vulkan
// SDK that VULKAN_SDK names has all of it, and ggml's CMake finds it there.
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import * as P from './paths.mjs'
import { pathToFileURL } from 'node:url'
import { contentOf, fetchCached, log, main, output, run, stamped } from './provision.mjs'

/** The Debian 13 packages, pinned. */
export const VULKAN_DEBS = [
  { name: 'libvulkan-dev', version: '1.4.309.0-1', arch: 'amd64', sha256: '8d329d465e16168afff58b1bd0dd6db46aac2cc3f56054a481b25a04e90b345a' },
  { name: 'libvulkan1', version: '1.4.309.0-1', arch: 'amd64', sha256: 'f47da79cd140264fe21cceb08bc87a71bc7fec05819e4a421f3f518d21101a37' },
  { name: 'spirv-headers', version: '1.6.1+1.4.309.0-1', arch: 'all', sha256: 'dc18db866d63680351c40ac6b6bece34cb52da64a7799ce1cc4f16f6bff4d064' },
]

const SUITE = 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main'
export const GLSLC_INSTALL = 'apt-get install glslc'
/** Where glslc's output is cached, across builds and targets. */
export const GLSLC_CACHE = join(P.CACHE, 'glslc')
const GLSLC_WRAPPER_SOURCE = new URL('./vulkan/glslc-cached.sh', import.meta.url)

/** The file name apt-get download gives a package (an epoch-less version; `:` would be %3a). */
const debFile = (d) => `${d.name}_${d.version}_${d.arch}.deb`

/** apt-get with its own sources list, lists and cache under `dir`: the system's apt is untouched. */
function privateApt(dir) {
  for (const sub of ['lists/partial', 'cache/archives/partial']) mkdirSync(join(dir, sub), { recursive: true })
  writeFileSync(join(dir, 'sources.list'), `${SUITE}\n`)
  return [
    '-o', `Dir::Etc::SourceList=${join(dir, 'sources.list')}`,
    '-o', 'Dir::Etc::SourceParts=/nonexistent',
    '-o', `Dir::State::Lists=${join(dir, 'lists')}`,
    '-o', `Dir::Cache=${join(dir, 'cache')}`,
    '-o', 'Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false',
    // As root, apt would hand the download to its _apt user, who cannot write here.
    ...(process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : []),
  ]
}

function requireTool(cmd, args, hint) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' })
  if (r.error || r.status !== 0) throw new Error(`${cmd} is not installed: ${hint}`)
}

/** The pinned .deb files, downloaded once into the cache. */
function debs() {
  const apt = join(P.CACHE, 'apt-trixie')
  let updated = false
  return VULKAN_DEBS.map((d) =>
    fetchCached(debFile(d), d.sha256, () => {
      requireTool('apt-get', ['--version'], 'the Vulkan build fetches its headers from Debian with apt-get (Debian or Ubuntu, with the debian-archive-keyring package)')
      const options = privateApt(apt)
      if (!updated) {
        run('apt-get', [...options, '-qq', 'update'])
        updated = true
      }
      run('apt-get', [...options, '-qq', 'download', `${d.name}=${d.version}`], { cwd: P.CACHE })
    }),
  )
}

/** The unpacked packages: usr/include, usr/lib/<triple>/libvulkan.so.1, usr/share/cmake. */
function unpacked() {
  const dir = join(P.HOME, 'vulkan-sdk')
  const inputs = [VULKAN_DEBS, contentOf(new URL(import.meta.url))]
  stamped(dir, inputs, () => {
    const files = debs()
    log('unpacking the Vulkan headers and loader (Debian 13 packages)')
    const scratch = `${dir}.unpack`
    rmSync(scratch, { recursive: true, force: true })
    mkdirSync(scratch, { recursive: true })
    for (const file of files) run('dpkg-deb', ['-x', file, scratch])
    rmSync(dir, { recursive: true, force: true })
    renameSync(scratch, dir)
  })
  return { usr: join(dir, 'usr'), id: inputs }
}

/** The functions Debian's Vulkan loader exports. */
function loaderExports(usr) {
  const lib = join(usr, 'lib')
  const triple = readdirSync(lib).find((d) => d.endsWith('-linux-gnu'))
  const loader = join(lib, triple ?? '', 'libvulkan.so.1')
  if (!existsSync(loader)) throw new Error(`${loader} is missing: delete ${join(P.HOME, 'vulkan-sdk')} and run setup again`)
  const names = output('nm', ['-D', '--defined-only', '--format=posix', loader])
    .split('\n')
    .map((line) => line.split(' '))
    .filter(([name, type]) => type === 'T' && /^vk\w+$/.test(name))
    .map(([name]) => name)
  if (names.length < 100) throw new Error(`${loader} exports only ${names.length} Vulkan functions`)
  return names
}

/**
 * libvulkan.so (soname libvulkan.so.1) for the link only: every function
 * the real loader exports, as empty stand-ins, compiled by `cc` (the
 * target's compiler). Never shipped, never run.
 */
function linkStub(usr, toolchain, dir) {
  const stub = join(dir, 'libvulkan.so')
  stamped(dir, [toolchain.id, loaderExports(usr)], () => {
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    const source = join(dir, 'stub.c')
    const names = loaderExports(usr)
    const body = names.map((n) => `void ${n}(void) { __builtin_trap(); }`).join('\n')
    writeFileSync(source, `/* A link stub of the Vulkan loader (scripts/vulkan-sdk.mjs): never run. */\n${body}\n`)
    const real = join(dir, 'libvulkan.so.1')
    run(toolchain.cc ?? 'cc', ['-shared', '-fPIC', '-o', real, source, '-Wl,-soname,libvulkan.so.1'])
    symlinkSync('libvulkan.so.1', stub)
  })
  return stub
}

/** A value for sh, in single quotes. */
const shQuote = (value) => `'${String(value).replaceAll("'", `'\\''`)}'`

/**
 * Writes glslc behind its cache: `wrapper`, a shell script with the real
 * glslc's path (`glslc`) and version and the cache folder written into it.
 * Rewritten only when any of them changes, through a rename (a build may be
 * running it). Returns what identifies it, for the build's stamp.
 */
export function writeGlslcWrapper(wrapper, { glslc = output('sh', ['-c', 'command -v glslc']), cache = GLSLC_CACHE } = {}) {
  const version = output(glslc, ['--version'])
  const script = [
    '#!/bin/sh',
    '# Written by scripts/vulkan-sdk.mjs from scripts/vulkan/glslc-cached.sh.',
    `GLSLC=${shQuote(glslc)}`,
    `GLSLC_VERSION=${shQuote(version)}`,
    `CACHE=${shQuote(cache)}`,
    readFileSync(GLSLC_WRAPPER_SOURCE, 'utf8'),
  ].join('\n')
  if (!existsSync(wrapper) || readFileSync(wrapper, 'utf8') !== script) {
    mkdirSync(dirname(wrapper), { recursive: true })
    mkdirSync(cache, { recursive: true })
    writeFileSync(`${wrapper}.new`, script)
    chmodSync(`${wrapper}.new`, 0o755)
    renameSync(`${wrapper}.new`, wrapper)
  }
  return [glslc, version, script]
}

/** The Vulkan builds' glslc: .whisper/toolchains/glslc-cached/glslc, caching into .whisper/cache/glslc/. */
function cachedGlslc() {
  const path = join(P.HOME, 'toolchains', 'glslc-cached', 'glslc')
  return { path, id: writeGlslcWrapper(path) }
}

/**
 * libvulkan-1.dll.a, the import library of vulkan-1.dll (the Windows
 * loader, which comes with the graphics driver) for mingw-w64's linker:
 * every function Debian's loader exports, which the Windows loader exports
 * too. ggml's own calls go through vkGetInstanceProcAddr.
 */
function importLibrary(usr, dir) {
  const library = join(dir, 'libvulkan-1.dll.a')
  const names = loaderExports(usr)
  stamped(dir, [names], () => {
    rmSync(dir, { recursive: true, force: true })
    mkdirSync(dir, { recursive: true })
    const def = join(dir, 'vulkan-1.def')
    writeFileSync(def, `LIBRARY vulkan-1.dll\nEXPORTS\n${names.map((n) => `  ${n}`).join('\n')}\n`)
    run('x86_64-w64-mingw32-dlltool', ['-d', def, '-l', library])
  })
  return library
}

/**
 * What ggml's Vulkan build takes from the LunarG SDK: for each, the paths
 * under it where ggml looks (any one will do). The SPIR-V header is one of
 * the three ggml-vulkan.cpp tries with __has_include.
 */
export const LUNARG_NEEDS = {
  'the Vulkan C++ headers': [['Include', 'vulkan', 'vulkan.hpp']],
  'the loader\'s import library': [['Lib', 'vulkan-1.lib']],
  glslc: [['Bin', 'glslc.exe']],
  'the SPIR-V header': [['Include', 'spirv', 'unified1', 'spirv.hpp'], ['Include', 'spirv-headers', 'spirv.hpp'], ['Include', 'spirv.hpp']],
}

/** The folder of the SDK's own SPIRV-HeadersConfig.cmake, if it ships one. */
function spirvHeadersConfig(sdk) {
  for (const entry of readdirSync(sdk, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name === 'SPIRV-HeadersConfig.cmake') return entry.parentPath ?? entry.path
  }
  return null
}

/**
 * ggml's CMake asks for the SPIRV-Headers package (find_package CONFIG)
 * only to have it: the header itself it finds beside Vulkan's. Where the
 * SDK has no package file for it, this one declares the target, empty.
 */
function spirvHeadersStandIn() {
  const dir = join(P.HOME, 'toolchains', 'spirv-headers-config')
  mkdirSync(dir, { recursive: true })
  writeFileSync(
    join(dir, 'SPIRV-HeadersConfig.cmake'),
    '# Written by scripts/vulkan-sdk.mjs: the SDK has no SPIRV-Headers package; its header is in the Vulkan include folder.\nif(NOT TARGET SPIRV-Headers::SPIRV-Headers)\n  add_library(SPIRV-Headers::SPIRV-Headers INTERFACE IMPORTED)\nendif()\n',
  )
  return dir
}

/**
 * On Windows (the release's win32-x64-msvc build): the LunarG Vulkan SDK
 * that VULKAN_SDK names (its installer sets it; the release workflow
 * installs a pinned one). ggml's CMake finds the headers, vulkan-1.lib and
 * glslc.exe there itself; each is checked first, so that a missing or
 * partial SDK says so before CMake runs.
 */
export function lunargSdk(env = process.env) {
  const sdk = env.VULKAN_SDK
  if (!sdk) throw new Error('the Vulkan build on Windows needs the LunarG Vulkan SDK: install it (it sets VULKAN_SDK), or build without GPU variants')
  const missing = Object.entries(LUNARG_NEEDS)
    .filter(([, places]) => !places.some((parts) => existsSync(join(sdk, ...parts))))
    .map(([what, places]) => `${what} (${places.map((parts) => parts.join('\\')).join(' or ')})`)
  if (missing.length > 0) throw new Error(`the Vulkan SDK in VULKAN_SDK=${sdk} lacks ${missing.join(', ')}: install the LunarG Vulkan SDK (1.4 or newer) with its default components`)
  const spirv = spirvHeadersConfig(sdk) ?? spirvHeadersStandIn()
  // Forward slashes: CMake reads a backslash in a -D value as an escape in places.
  return { id: [sdk], cmake: ['-DGGML_VULKAN=ON', `-DSPIRV-Headers_DIR=${spirv.replaceAll('\\', '/')}`] }
}

/**
 * The Vulkan SDK for `target`'s build with `toolchain` (its `cc` compiles
 * the Linux link stub): { id, cmake }, cmake holding the flags that point
 * ggml's CMake at the headers, the loader's link library, glslc (through
 * its cache) and the SPIR-V headers.
 */
export function vulkanSdk(target, toolchain) {
  if (process.platform === 'win32') return lunargSdk()
  requireTool('glslc', ['--version'], `the Vulkan build compiles its shaders with it (${GLSLC_INSTALL})`)
  requireTool('dpkg-deb', ['--version'], 'the Vulkan build unpacks Debian packages (Debian or Ubuntu)')
  const { usr, id } = unpacked()
  const windows = target.startsWith('win32')
  const library = windows ? importLibrary(usr, join(P.HOME, 'vulkan-sdk-stub', target)) : linkStub(usr, toolchain, join(P.HOME, 'vulkan-sdk-stub', target))
  const glslc = cachedGlslc()
  return {
    id: [id, toolchain.id, glslc.id],
    cmake: [
      '-DGGML_VULKAN=ON',
      // No run path to the stub's folder: the system's loader must be the one found.
      '-DCMAKE_SKIP_RPATH=ON',
      `-DVulkan_INCLUDE_DIR=${join(usr, 'include')}`,
      `-DVulkan_LIBRARY=${library}`,
      `-DVulkan_GLSLC_EXECUTABLE=${glslc.path}`,
      `-DSPIRV-Headers_DIR=${join(usr, 'share', 'cmake', 'SPIRV-Headers')}`,
    ],
  }
}

/**
 * node scripts/vulkan-sdk.mjs --check-lunarg <folder>: whether a LunarG SDK
 * has what the Windows Vulkan build takes from it (the release workflow
 * runs it right after installing the SDK); prints the CMake flags.
 */
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main('vulkan-sdk', () => {
    if (process.argv[2] !== '--check-lunarg' || !process.argv[3]) throw new Error('usage: node scripts/vulkan-sdk.mjs --check-lunarg <Vulkan SDK folder>')
    console.log(lunargSdk({ VULKAN_SDK: process.argv[3] }).cmake.join(' '))
  })
}
