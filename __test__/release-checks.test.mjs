// What the release workflow's first run would trip on, caught here before a
// tag can: the scripts it runs on Windows, the packages napi prepublish
// checks, the CMake settings of the MSVC build.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { ROOT } from '../scripts/paths.mjs'

const onLinux = { skip: process.platform !== 'linux' && 'builds its fixtures with Linux tools' }

test('whisper.cpp\'s source unpacks without a tar program (Git\'s tar on Windows reads D:\\ as a host)', onLinux, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pw-untar-'))
  try {
    mkdirSync(join(dir, 'src', 'package', 'cpp', 'whisper.cpp', 'src'), { recursive: true })
    writeFileSync(join(dir, 'src', 'package', 'cpp', 'whisper.cpp', 'src', 'whisper.cpp'), 'int whisper;\n')
    writeFileSync(join(dir, 'src', 'package', 'README.md'), 'not this\n')
    assert.equal(spawnSync('tar', ['-czf', join(dir, 'w.tgz'), '-C', join(dir, 'src'), 'package']).status, 0)
    // FAKE, for fault injection: a `tar` first on the PATH that fails, as
    // Git's does on a path with a drive letter.
    mkdirSync(join(dir, 'bin'))
    writeFileSync(join(dir, 'bin', 'tar'), '#!/bin/sh\necho "tar: Cannot connect to D: resolve failed" >&2\nexit 2\n')
    chmodSync(join(dir, 'bin', 'tar'), 0o755)
    const script = `import(${JSON.stringify(join(ROOT, 'scripts', 'whisper-build.mjs'))}).then((m) => m.unpackTree(${JSON.stringify(join(dir, 'w.tgz'))}, 'package/cpp/whisper.cpp', ${JSON.stringify(join(dir, 'out'))}))`
    const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}` }, encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    assert.equal(readFileSync(join(dir, 'out', 'src', 'whisper.cpp'), 'utf8'), 'int whisper;\n')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('every platform package lists its files one by one, as napi prepublish requires', async () => {
  const { PUBLISHED, packageFiles } = await import('../scripts/targets.mjs')
  for (const target of PUBLISHED) {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'npm', target, 'package.json'), 'utf8'))
    assert.deepEqual(pkg.files, packageFiles(target), `npm/${target}/package.json`)
    assert.equal(pkg.main, `persistent-whisper.${target}.node`)
  }
})

/**
 * napi prepublish --dry-run over a release as the publish job lays it out:
 * the main package, and npm/<target>/ for every published platform. The
 * packages this machine builds are the packed ones (npm run package); the
 * others hold stand-in bytes under their listed names (their manifests are
 * what is checked).
 */
test('napi prepublish --dry-run accepts the packed platform packages', { ...onLinux, timeout: 1_800_000 }, async () => {
  const { PUBLISHED, TARGETS, packageFiles } = await import('../scripts/targets.mjs')
  const { packPlatform } = await import('../scripts/package.mjs')
  const { crossTargets } = await import('../scripts/prepare.mjs')
  const { hostTarget } = await import('../scripts/targets.mjs')
  const { untar } = await import('../scripts/untar.mjs')
  const built = [hostTarget(), ...crossTargets()].filter((t) => PUBLISHED.includes(t))
  assert.ok(built.length > 0)
  const stage = mkdtempSync(join(tmpdir(), 'pw-prepublish-'))
  try {
    const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
    assert.deepEqual([...root.napi.targets].sort(), PUBLISHED.map((t) => TARGETS[t].triple).sort(), 'package.json napi.targets')
    writeFileSync(join(stage, 'package.json'), JSON.stringify(root, null, 2))
    for (const file of [...root.files, 'README.md']) cpSync(join(ROOT, file), join(stage, file), { recursive: true })
    mkdirSync(join(stage, 'npm'))
    for (const target of PUBLISHED) {
      const dir = join(stage, 'npm', target)
      if (built.includes(target)) {
        const unpacked = join(stage, 'unpack', target)
        untar(packPlatform(target), unpacked)
        renameSync(join(unpacked, 'package'), dir)
      } else {
        mkdirSync(dir, { recursive: true })
        cpSync(join(ROOT, 'npm', target, 'package.json'), join(dir, 'package.json'))
        for (const file of packageFiles(target)) {
          mkdirSync(dirname(join(dir, file)), { recursive: true })
          writeFileSync(join(dir, file), 'stand-in\n')
        }
      }
    }
    rmSync(join(stage, 'unpack'), { recursive: true, force: true })
    const napi = join(ROOT, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
    const prepublish = root.scripts.prepublishOnly.split(/\s+/)
    assert.deepEqual(prepublish.slice(0, 2), ['napi', 'prepublish'])
    assert.ok(prepublish.includes('--no-gh-release'), 'the publish job has no token for a GitHub release')
    const r = spawnSync(process.execPath, [napi, ...prepublish.slice(1), '--dry-run'], { cwd: stage, encoding: 'utf8', env: { ...process.env, GITHUB_REPOSITORY: '' } })
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`)
  } finally {
    rmSync(stage, { recursive: true, force: true })
  }
})

test('cargo test builds for Node\'s target where cargo runs for another CPU (x64 Node under Rosetta 2)', async () => {
  const { cargoTestArgs } = await import('../scripts/test.mjs')
  assert.deepEqual(cargoTestArgs('aarch64-apple-darwin', 'darwin-x64'), ['test', '--workspace', '--target', 'x86_64-apple-darwin'])
  assert.deepEqual(cargoTestArgs('aarch64-apple-darwin', 'darwin-arm64'), ['test', '--workspace'])
  assert.deepEqual(cargoTestArgs('x86_64-unknown-linux-gnu', 'linux-x64-gnu'), ['test', '--workspace'])
})

test('the MSVC build compiles every file of whisper.cpp on the static C runtime (/MT), as the worker\'s shim is', { ...onLinux, timeout: 300_000 }, async () => {
  const { msvcCompileCommands } = await import('../scripts/msvc-configure.mjs')
  const { TARGETS } = await import('../scripts/targets.mjs')
  for (const variant of TARGETS['win32-x64-msvc'].variants) {
    const commands = msvcCompileCommands(variant)
    const files = commands.map((c) => c.file.split(/[\\/]/).pop())
    for (const needed of ['whisper.cpp', 'ggml.c', 'ggml-cpu.c', 'cli.cpp', 'server.cpp']) assert.ok(files.includes(needed), `${variant}: ${needed} is compiled`)
    const wrong = commands.filter((c) => !/(^|\s)[/-]MT(\s|$)/.test(c.command) || /(^|\s)[/-]MDd?(\s|$)/.test(c.command))
    assert.deepEqual(wrong.map((c) => `${c.file}: ${c.command.match(/[/-]M[TD]d?\b/g)}`), [], `${variant}: compiled without /MT (LNK2038 against the shim, and the VC++ runtime needed)`)
  }
})

const onLinuxX64 = { skip: !(process.platform === 'linux' && process.arch === 'x64') && 'the pinned zig runs on x86-64 Linux' }

test('the macOS build\'s C++ compiles for aarch64-macos: patched whisper.cpp, the worker\'s shim, ggml-metal\'s C++ (zig c++)', { ...onLinuxX64, timeout: 900_000 }, async () => {
  const { compileForMacos, zigCompile } = await import('../scripts/macos-compile.mjs')
  // The header the worker's build script generates (cargo test has run it).
  const builds = join(ROOT, 'target', 'debug', 'build')
  const generated = readdirSync(builds)
    .filter((d) => d.startsWith('persistent-whisper-worker-'))
    .map((d) => join(builds, d, 'out', 'include'))
    .filter((d) => existsSync(join(d, 'pw_decoding.h')))
    .sort((a, b) => statSync(join(b, 'pw_decoding.h')).mtimeMs - statSync(join(a, 'pw_decoding.h')).mtimeMs)[0]
  assert.ok(generated, 'pw_decoding.h is generated by the worker\'s build script: run cargo test --workspace first')
  const results = compileForMacos(generated)
  assert.ok(results.length >= 7)
  assert.deepEqual(results.filter((r) => !r.ok).map((r) => `${r.file}\n${r.stderr}`), [])
  // The control: a Linux-only header is not there for macOS, so the check compiles against macOS's headers.
  const dir = mkdtempSync(join(tmpdir(), 'pw-zig-control-'))
  try {
    writeFileSync(join(dir, 'linux-only.cpp'), '#include <sys/prctl.h>\nint main() { return prctl(PR_SET_PDEATHSIG, 9); }\n')
    const control = zigCompile('aarch64-macos', join(dir, 'linux-only.cpp'))
    assert.equal(control.ok, false)
    assert.match(control.stderr, /sys\/prctl\.h/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

/**
 * A LunarG Vulkan SDK's layout on Windows (Include, Lib\vulkan-1.lib,
 * Bin\glslc.exe), made of the Debian 13 headers set-up unpacked, a stand-in
 * import library, and this machine's glslc: enough for CMake to configure.
 */
function fakeLunargSdk(dir) {
  const include = join(ROOT, '.whisper', 'vulkan-sdk', 'usr', 'include')
  assert.ok(existsSync(join(include, 'vulkan', 'vulkan.hpp')), `${include} is missing: npm run setup unpacks the Vulkan headers`)
  const glslc = spawnSync('sh', ['-c', 'command -v glslc'], { encoding: 'utf8' }).stdout.trim()
  assert.ok(glslc, 'glslc is not installed (apt-get install glslc)')
  mkdirSync(join(dir, 'Lib'), { recursive: true })
  mkdirSync(join(dir, 'Bin'))
  symlinkSync(include, join(dir, 'Include'))
  writeFileSync(join(dir, 'Lib', 'vulkan-1.lib'), 'stand-in\n')
  for (const name of ['glslc.exe', 'glslc']) symlinkSync(glslc, join(dir, 'Bin', name))
  return dir
}

test('the Windows Vulkan build checks the LunarG SDK before CMake runs: what is missing is named, a SPIRV-Headers package stands in where the SDK has none', onLinux, async () => {
  const { lunargSdk } = await import('../scripts/vulkan-sdk.mjs')
  const dir = mkdtempSync(join(tmpdir(), 'pw-lunarg-'))
  try {
    const sdk = fakeLunargSdk(join(dir, 'sdk'))
    const flags = lunargSdk({ VULKAN_SDK: sdk }).cmake
    assert.ok(flags.includes('-DGGML_VULKAN=ON'))
    const spirv = flags.find((f) => f.startsWith('-DSPIRV-Headers_DIR='))?.split('=')[1]
    assert.ok(spirv && existsSync(join(spirv, 'SPIRV-HeadersConfig.cmake')), flags.join(' '))
    // The SDK's own package wins where it has one.
    mkdirSync(join(sdk, 'share', 'cmake', 'SPIRV-Headers'), { recursive: true })
    writeFileSync(join(sdk, 'share', 'cmake', 'SPIRV-Headers', 'SPIRV-HeadersConfig.cmake'), '# the SDK\'s\n')
    assert.ok(lunargSdk({ VULKAN_SDK: sdk }).cmake.includes(`-DSPIRV-Headers_DIR=${join(sdk, 'share', 'cmake', 'SPIRV-Headers')}`))
    // What the release workflow runs after installing it: a partial SDK fails there, by name.
    rmSync(join(sdk, 'Bin', 'glslc.exe'))
    assert.throws(() => lunargSdk({ VULKAN_SDK: sdk }), /lacks glslc \(Bin\\glslc\.exe\)/)
    const cli = spawnSync(process.execPath, [join(ROOT, 'scripts', 'vulkan-sdk.mjs'), '--check-lunarg', sdk], { encoding: 'utf8' })
    assert.equal(cli.status, 1)
    assert.match(cli.stderr, /lacks glslc/)
    assert.throws(() => lunargSdk({}), /needs the LunarG Vulkan SDK/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the MSVC Vulkan build compiles ggml-vulkan and its shaders on the static C runtime (/MT) too', { ...onLinux, timeout: 300_000 }, async () => {
  const { msvcCompileCommands } = await import('../scripts/msvc-configure.mjs')
  const { lunargSdk } = await import('../scripts/vulkan-sdk.mjs')
  const { GPU_VARIANTS, TARGETS } = await import('../scripts/targets.mjs')
  assert.deepEqual(TARGETS['win32-x64-msvc'].gpu, ['vulkan'], 'the Windows package ships the Vulkan build')
  const dir = mkdtempSync(join(tmpdir(), 'pw-lunarg-'))
  try {
    const sdk = fakeLunargSdk(join(dir, 'sdk'))
    const commands = msvcCompileCommands(GPU_VARIANTS.vulkan.cpu, { extra: lunargSdk({ VULKAN_SDK: sdk }).cmake, env: { ...process.env, VULKAN_SDK: sdk } })
    const files = commands.map((c) => c.file.split(/[\\/]/).pop())
    for (const needed of ['ggml-vulkan.cpp', 'mul_mm.comp.cpp', 'whisper.cpp', 'cli.cpp']) assert.ok(files.includes(needed), `${needed} is compiled`)
    const wrong = commands.filter((c) => !/(^|\s)[/-]MT(\s|$)/.test(c.command) || /(^|\s)[/-]MDd?(\s|$)/.test(c.command))
    assert.deepEqual(wrong.map((c) => c.file), [], 'compiled without /MT')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the release workflow installs the pinned Vulkan SDK, checked, in each job that builds the Windows package', () => {
  const workflow = readFileSync(join(ROOT, '.github', 'workflows', 'release.yml'), 'utf8')
  assert.match(/^\s+VULKAN_SDK_VERSION: '(.*)'$/m.exec(workflow)?.[1] ?? '', /^1\.4\.\d+\.\d+$/)
  assert.match(/^\s+VULKAN_SDK_SHA256: '(.*)'$/m.exec(workflow)?.[1] ?? '', /^[0-9a-f]{64}$/)
  const jobs = workflow.split(/^ {2}(?=\w+:$)/m).slice(1)
  const windowsJobs = jobs.filter((job) => /target: win32-x64-msvc/.test(job))
  assert.deepEqual(windowsJobs.map((job) => job.split(':')[0]), ['build', 'test'])
  for (const job of windowsJobs) {
    const name = job.split(':')[0]
    const step = job.indexOf("- name: Vulkan SDK (the Windows package's Vulkan build)")
    assert.ok(step > 0, `${name}: installs the Vulkan SDK`)
    const body = job.slice(step, job.indexOf('\n      - ', step + 1))
    assert.match(body, /if: runner\.os == 'Windows'/)
    assert.match(body, /Get-FileHash -Algorithm SHA256[\s\S]*-ne \$env:VULKAN_SDK_SHA256/, `${name}: checks the installer's hash`)
    assert.match(body, /VULKAN_SDK=\$root.*GITHUB_ENV/, `${name}: sets VULKAN_SDK for the build`)
    assert.match(body, /node scripts\/vulkan-sdk\.mjs --check-lunarg \$root/, `${name}: checks the SDK at once`)
    const builds = job.search(name === 'build' ? /scripts\/package\.mjs/ : /- run: npm test/)
    assert.ok(builds > step, `${name}: the SDK is installed before the build`)
  }
})

test('the release workflow\'s Linux jobs install what the Linux Vulkan build needs: glslc, and the keyring its Debian 13 headers are checked with', () => {
  const workflow = readFileSync(join(ROOT, '.github', 'workflows', 'release.yml'), 'utf8')
  const jobs = workflow.split(/^ {2}(?=\w+:$)/m).slice(1)
  const linuxJobs = jobs.filter((job) => /target: linux-x64-gnu/.test(job))
  assert.deepEqual(linuxJobs.map((job) => job.split(':')[0]), ['build', 'test'])
  for (const job of linuxJobs) {
    const name = job.split(':')[0]
    const installs = [...job.matchAll(/apt-get install -y ([^\n]+)/g)].flatMap((m) => m[1].split(/\s+/))
    for (const pkg of ['glslc', 'debian-archive-keyring']) assert.ok(installs.includes(pkg), `${name}: apt-get install ${pkg}`)
  }
})
