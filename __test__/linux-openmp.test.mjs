// OpenMP in the Linux packages (issue 16 item 9): the glibc 2.17 toolchain
// lets CMake find OpenMP for C and C++ and links GCC 12's libgomp into the
// program statically (its libgomp.so needs glibc 2.34), and the shipped
// programs use the thread pool that scripts/targets.mjs asks for (OpenMP:
// measured faster by `npm run bench -- --only threading`, README).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cmake } from '../scripts/cmake.mjs'
import { HOME, JFK_WAV, TINY_EN } from '../scripts/paths.mjs'
import { PROGRAMS, TARGETS, WORKER, shippedVariants } from '../scripts/targets.mjs'
import { ARM64_SYSROOT } from '../scripts/test-tools.mjs'
import { linksOpenMP } from '../scripts/threading-build.mjs'
import { linuxToolchain } from '../scripts/toolchain.mjs'

const T = { timeout: 600_000 }
const skip = process.platform === 'linux' && process.arch === 'x64' ? false : 'the Linux packages are built on x86-64 Linux'
/** The glibc the toolchain builds for (RHEL 7). */
const GLIBC_LIMIT = [2, 17]

/** The glibc versions an ELF file's symbols need, and the shared libraries it names. */
function elfNeeds(file) {
  const versions = spawnSync('readelf', ['-V', '-W', file], { encoding: 'utf8' })
  const dynamic = spawnSync('readelf', ['-d', '-W', file], { encoding: 'utf8' })
  assert.equal(versions.status, 0, versions.stderr)
  return {
    glibc: [...new Set([...versions.stdout.matchAll(/Name: GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]))],
    libraries: [...dynamic.stdout.matchAll(/\(NEEDED\).*\[(.+)\]/g)].map((m) => m[1]),
  }
}

const newer = ([a, b], [major, minor]) => a > major || (a === major && b > minor)

const PROGRAM = `
#include <omp.h>
#include <stdio.h>
int main(void) {
  int team = 0;
  #pragma omp parallel num_threads(3)
  {
    #pragma omp single
    team = omp_get_num_threads();
  }
  printf("team %d\\n", team);
  return 0;
}
`

const CMAKE_LISTS = `
cmake_minimum_required(VERSION 3.14)
project(omp C CXX)
find_package(OpenMP REQUIRED COMPONENTS C CXX)
add_executable(omp-c main.c)
target_link_libraries(omp-c PRIVATE OpenMP::OpenMP_C)
add_executable(omp-cxx main.cpp)
target_link_libraries(omp-cxx PRIVATE OpenMP::OpenMP_CXX)
`

for (const [target, runner] of [
  ['linux-x64-gnu', []],
  ['linux-arm64-gnu', ['qemu-aarch64-static', '-L', ARM64_SYSROOT]],
]) {
  test(`${target}: CMake finds OpenMP for C and C++ with the packaging toolchain, and the programs carry libgomp and need glibc 2.17`, { ...T, skip }, () => {
    const toolchain = linuxToolchain(target)
    const dir = mkdtempSync(join(tmpdir(), 'pw-openmp-'))
    try {
      writeFileSync(join(dir, 'CMakeLists.txt'), CMAKE_LISTS)
      writeFileSync(join(dir, 'main.c'), PROGRAM)
      writeFileSync(join(dir, 'main.cpp'), PROGRAM)
      const build = join(dir, 'build')
      const configure = spawnSync(cmake(), ['-S', dir, '-B', build, '-DCMAKE_BUILD_TYPE=Release', ...toolchain.cmake], { encoding: 'utf8' })
      // ggml turns OpenMP off with only a warning; here it is an error, with CMake's reason.
      assert.equal(configure.status, 0, `${configure.stdout}\n${configure.stderr}`)
      const compile = spawnSync(cmake(), ['--build', build], { encoding: 'utf8' })
      assert.equal(compile.status, 0, `${compile.stdout}\n${compile.stderr}`)
      for (const name of ['omp-c', 'omp-cxx']) {
        const file = join(build, name)
        const { glibc, libraries } = elfNeeds(file)
        assert.ok(glibc.length > 0, `${name} names no glibc version`)
        assert.deepEqual(glibc.filter((v) => newer(v, GLIBC_LIMIT)).map((v) => v.join('.')), [], name)
        assert.deepEqual(libraries.filter((l) => l.startsWith('libgomp')), [], `${name} links libgomp statically`)
        assert.ok(linksOpenMP(file), `${name} carries libgomp`)
        const r = spawnSync(runner[0] ?? file, [...runner.slice(1), ...(runner.length ? [file] : [])], { encoding: 'utf8', timeout: 60_000 })
        assert.equal(r.status, 0, r.stderr)
        assert.equal(r.stdout.trim(), 'team 3', name)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
}

for (const target of ['linux-x64-gnu', 'linux-arm64-gnu']) {
  const openmp = TARGETS[target].cmake.includes('-DGGML_OPENMP=ON')
  test(`${target}: every program of every variant ${openmp ? 'carries libgomp' : 'uses ggml\'s own thread pool'}, as scripts/targets.mjs says`, { skip }, () => {
    for (const variant of shippedVariants(target)) {
      for (const program of [...PROGRAMS, WORKER]) {
        const file = join(HOME, 'targets', target, 'bin', variant, program)
        assert.ok(existsSync(file), `${file}: run npm run setup (and scripts/prepare.mjs --cross for arm64)`)
        assert.equal(linksOpenMP(file), openmp, `${target} ${variant} ${program}`)
      }
    }
  })
}

test('linux-x64-gnu: whisper-cli reports the thread pool scripts/targets.mjs asks for', { ...T, skip }, () => {
  const openmp = TARGETS['linux-x64-gnu'].cmake.includes('-DGGML_OPENMP=ON')
  // The baseline runs on every x86-64 CPU; its system_info line lists ggml's features.
  const cli = join(HOME, 'targets', 'linux-x64-gnu', 'bin', 'x86-64-v2', 'whisper-cli')
  const r = spawnSync(cli, ['-m', TINY_EN, '-f', JFK_WAV, '-t', '2', '-d', '1000', '-nt'], { encoding: 'utf8', timeout: 120_000 })
  assert.equal(r.status, 0, r.stderr)
  const info = r.stderr.split('\n').find((l) => l.startsWith('system_info:'))
  assert.ok(info, r.stderr)
  assert.equal(/OPENMP = 1/.test(info), openmp, info)
})
