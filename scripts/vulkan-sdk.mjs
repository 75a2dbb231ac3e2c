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
// The programs link to libvulkan.so.1 by name, which the graphics driver's
// loader provides on the user's machine. They link against a stub of it
// built with the target's own compiler, exporting the functions the real
// loader exports (read from Debian's libvulkan1): the real one is built for
// a newer glibc than the packages' 2.17, which the linker rightly refuses.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as P from './paths.mjs'
import { contentOf, fetchCached, log, output, run, stamped } from './provision.mjs'

/** The Debian 13 packages, pinned. */
export const VULKAN_DEBS = [
  { name: 'libvulkan-dev', version: '1.4.309.0-1', arch: 'amd64', sha256: '8d329d465e16168afff58b1bd0dd6db46aac2cc3f56054a481b25a04e90b345a' },
  { name: 'libvulkan1', version: '1.4.309.0-1', arch: 'amd64', sha256: 'f47da79cd140264fe21cceb08bc87a71bc7fec05819e4a421f3f518d21101a37' },
  { name: 'spirv-headers', version: '1.6.1+1.4.309.0-1', arch: 'all', sha256: 'dc18db866d63680351c40ac6b6bece34cb52da64a7799ce1cc4f16f6bff4d064' },
]

const SUITE = 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main'
export const GLSLC_INSTALL = 'apt-get install glslc'

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

/**
 * The Vulkan SDK for `target`'s build with `toolchain` (its `cc` compiles
 * the link stub): { id, cmake }, cmake holding the flags that point ggml's
 * CMake at the headers, the stub, glslc and the SPIR-V headers.
 */
export function vulkanSdk(target, toolchain) {
  requireTool('glslc', ['--version'], `the Vulkan build compiles its shaders with it (${GLSLC_INSTALL})`)
  requireTool('dpkg-deb', ['--version'], 'the Vulkan build unpacks Debian packages (Debian or Ubuntu)')
  const { usr, id } = unpacked()
  const library = linkStub(usr, toolchain, join(P.HOME, 'vulkan-sdk-stub', target))
  const glslc = output('sh', ['-c', 'command -v glslc'])
  return {
    id: [id, toolchain.id, glslc],
    cmake: [
      '-DGGML_VULKAN=ON',
      // No run path to the stub's folder: the system's loader must be the one found.
      '-DCMAKE_SKIP_RPATH=ON',
      `-DVulkan_INCLUDE_DIR=${join(usr, 'include')}`,
      `-DVulkan_LIBRARY=${library}`,
      `-DVulkan_GLSLC_EXECUTABLE=${glslc}`,
      `-DSPIRV-Headers_DIR=${join(usr, 'share', 'cmake', 'SPIRV-Headers')}`,
    ],
  }
}
