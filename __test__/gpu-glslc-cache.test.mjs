// The Vulkan builds' glslc cache (scripts/vulkan/glslc-cached.sh, written by
// scripts/vulkan-sdk.mjs): the second build of the same shaders (Linux,
// then Windows) runs no glslc, gets the same SPIR-V, and its dependency
// files name its own outputs; a change to the shaders' folder, a failing
// compile and anything but a compile to a file go to glslc as they are.
// The real glslc runs behind a counting wrapper (the count is what proves a
// hit), on a small shader folder made here.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { writeGlslcWrapper } from '../scripts/vulkan-sdk.mjs'

const real = spawnSync('sh', ['-c', 'command -v glslc'], { encoding: 'utf8' }).stdout.trim()
const skip = process.platform === 'win32' ? 'the cache is a shell script, for the Linux-hosted Vulkan builds' : !real && 'glslc is not installed (apt-get install glslc)'

const dir = mkdtempSync(join(tmpdir(), 'pw-glslc-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))

/** The shaders' folder: a compute shader that includes a file beside it, as ggml's do. */
const shaders = join(dir, 'shaders')
mkdirSync(shaders)
const INCLUDED = '#define SCALE 2.0\n'
writeFileSync(join(shaders, 'scale.glsl'), INCLUDED)
writeFileSync(
  join(shaders, 'scale.comp'),
  '#version 450\n#extension GL_GOOGLE_include_directive : require\n#include "scale.glsl"\nlayout(local_size_x = 64) in;\nlayout(binding = 0) buffer B { float data[]; };\nvoid main() { data[gl_GlobalInvocationID.x] *= SCALE * FACTOR; }\n',
)

/** The real glslc behind a counter: every call it gets is a line in `calls`. */
const calls = join(dir, 'calls')
const counting = join(dir, 'counting-glslc')
writeFileSync(counting, `#!/bin/sh\necho x >> '${calls}'\nexec '${real}' "$@"\n`)
chmodSync(counting, 0o755)
const count = () => (existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter(Boolean).length : 0)

const cache = join(dir, 'cache')
const glslc = join(dir, 'bin', 'glslc')
if (!skip) writeGlslcWrapper(glslc, { glslc: counting, cache })

/** One compile as vulkan-shaders-gen runs it, into build folder `build`: { status, stderr, spv, dep }. */
function compile(build, factor = '3.0') {
  mkdirSync(build, { recursive: true })
  const out = join(build, 'scale_f32.spv')
  const dep = join(build, 'scale.comp.cpp.d')
  const r = spawnSync(glslc, ['-fshader-stage=compute', '--target-env=vulkan1.2', join(shaders, 'scale.comp'), '-o', out, '-O', '-MD', '-MF', dep, `-DFACTOR=${factor}`], { encoding: 'utf8' })
  return { status: r.status, stderr: r.stderr, out, spv: existsSync(out) ? readFileSync(out) : null, dep: existsSync(dep) ? readFileSync(dep, 'utf8') : '' }
}

test('a second build of the same shaders runs no glslc: the same SPIR-V, and a dependency file that names its own output', { skip }, () => {
  // (writing the wrapper asked glslc its version)
  const calls0 = count()
  const first = compile(join(dir, 'linux'))
  assert.equal(first.status, 0, first.stderr)
  assert.equal(count(), calls0 + 1)
  // What glslc itself makes, for the comparison.
  const direct = spawnSync(real, ['-fshader-stage=compute', '--target-env=vulkan1.2', join(shaders, 'scale.comp'), '-o', join(dir, 'direct.spv'), '-O', '-DFACTOR=3.0'])
  assert.equal(direct.status, 0)
  assert.deepEqual(first.spv, readFileSync(join(dir, 'direct.spv')))
  assert.ok(first.dep.startsWith(`${first.out}: `), first.dep)
  assert.ok(first.dep.includes(join(shaders, 'scale.glsl')), 'the included file is a dependency')

  const second = compile(join(dir, 'windows'))
  assert.equal(second.status, 0, second.stderr)
  assert.equal(count(), calls0 + 1, 'served from the cache')
  assert.deepEqual(second.spv, first.spv)
  assert.equal(second.dep, first.dep.replace(first.out, second.out))
  // Other arguments are another entry.
  assert.equal(compile(join(dir, 'other'), '5.0').status, 0)
  assert.equal(count(), calls0 + 2)
})

test('a change to any file of the shaders\' folder compiles again', { skip }, () => {
  const before = compile(join(dir, 'before-change'))
  const calls0 = count()
  writeFileSync(join(shaders, 'scale.glsl'), '#define SCALE 4.0\n')
  try {
    const after = compile(join(dir, 'after-change'))
    assert.equal(after.status, 0, after.stderr)
    assert.equal(count(), calls0 + 1)
    assert.notDeepEqual(after.spv, before.spv)
  } finally {
    writeFileSync(join(shaders, 'scale.glsl'), INCLUDED)
  }
})

test('a failing compile says why, fails, and is never cached; -o - and --version go to glslc as they are', { skip }, () => {
  for (let i = 1; i <= 2; i++) {
    const calls0 = count()
    const bad = compile(join(dir, `bad-${i}`), 'not_a_number')
    assert.notEqual(bad.status, 0)
    assert.match(bad.stderr, /error/)
    assert.equal(count(), calls0 + 1, 'glslc ran')
  }
  const version = spawnSync(glslc, ['--version'], { encoding: 'utf8' })
  assert.equal(version.status, 0)
  assert.match(version.stdout, /shaderc/)
  const toStdout = spawnSync(glslc, ['-fshader-stage=compute', join(shaders, 'scale.comp'), '-o', '-', '-DFACTOR=1.0'])
  assert.equal(toStdout.status, 0)
  assert.ok(toStdout.stdout.length > 0)
  assert.equal(toStdout.stdout.readUInt32LE(0), 0x07230203, 'SPIR-V on stdout')
})

test('compiles of one entry at once (the Linux and Windows builds together) all get whole SPIR-V; the cache holds no temporary file', { skip }, async () => {
  const runs = Array.from({ length: 6 }, (_, i) => {
    const build = join(dir, `together-${i}`)
    mkdirSync(build, { recursive: true })
    const out = join(build, 'x.spv')
    return new Promise((resolve) => {
      const child = spawn(glslc, ['-fshader-stage=compute', '--target-env=vulkan1.2', join(shaders, 'scale.comp'), '-o', out, '-O', '-DFACTOR=7.0'])
      child.on('exit', (status) => resolve({ status, out }))
    })
  })
  const done = await Promise.all(runs)
  const spvs = done.map((r) => {
    assert.equal(r.status, 0)
    return readFileSync(r.out)
  })
  for (const spv of spvs) assert.deepEqual(spv, spvs[0])
  const files = readdirSync(cache, { recursive: true }).map(String)
  assert.deepEqual(files.filter((f) => /\.\d+$/.test(f)), [], 'no temporary file left')
})
