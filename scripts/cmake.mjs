// CMake for building whisper.cpp: the `cmake` on the PATH when it is recent
// enough, else CMake from PyPI's `cmake` wheel (pip download, pinned by
// sha256 like the model wheels), unpacked once into .whisper/cmake/. So a
// machine without CMake, or with an old one, needs only Python with pip.
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import * as P from './paths.mjs'
import { fetchCached, log, python } from './provision.mjs'

/** ggml needs 3.14; its Vulkan backend 3.19. */
export const MIN_CMAKE = [3, 19]

/** The wheel per platform (its files as PyPI lists them for cmake 3.31.10, the last 3.x). */
export const CMAKE_WHEEL = {
  spec: 'cmake==3.31.10',
  version: '3.31.10',
  files: {
    'linux-x64': {
      file: 'cmake-3.31.10-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl',
      sha256: '2f766bb46367e5e0559fa33184653754bce044583a06014dcaebf8e6dff8a1f1',
    },
    'linux-arm64': {
      file: 'cmake-3.31.10-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl',
      sha256: 'a4a5615f31f692c9b9aa8b365704e4b76172348af6fa40e16fea3f118bb01194',
    },
    darwin: {
      file: 'cmake-3.31.10-py3-none-macosx_10_10_universal2.whl',
      sha256: 'ad697643a00d9ba85179590a383c4f7401169b55ebf4b8b2938daf28c6bdeb6d',
    },
    'win32-x64': {
      file: 'cmake-3.31.10-py3-none-win_amd64.whl',
      sha256: 'f1ea1fe826355560e8976c3d5794d9357444209bc0e0d56676c71e6a571fd474',
    },
  },
}

const WHEEL_DIR = join(P.HOME, 'cmake', CMAKE_WHEEL.version)
const exe = (name) => (process.platform === 'win32' ? `${name}.exe` : name)

/** The version `cmd --version` reports, as [major, minor, patch]; undefined if it does not run. */
export function cmakeVersion(cmd) {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  const m = r.status === 0 && /cmake version (\d+)\.(\d+)\.(\d+)/.exec(r.stdout)
  return m ? m.slice(1).map(Number) : undefined
}

const newEnough = (v) => v && (v[0] > MIN_CMAKE[0] || (v[0] === MIN_CMAKE[0] && v[1] >= MIN_CMAKE[1]))

/** Where the wheel keeps its programs once unpacked. */
function wheelBin(root) {
  const app = join(root, 'cmake', 'data', 'CMake.app', 'Contents', 'bin')
  return process.platform === 'darwin' && existsSync(app) ? app : join(root, 'cmake', 'data', 'bin')
}

/** CMake from the pinned wheel, unpacked into .whisper/cmake/<version>/ (once). */
function wheelCmake(why) {
  const key = process.platform === 'darwin' ? 'darwin' : `${process.platform}-${process.arch}`
  const wheel = CMAKE_WHEEL.files[key]
  const need = `CMake ${MIN_CMAKE.join('.')} or later is needed to build whisper.cpp and ${why}`
  if (!wheel) throw new Error(`${need}; there is no pinned CMake wheel for ${key}: install CMake`)
  const bin = join(wheelBin(WHEEL_DIR), exe('cmake'))
  if (newEnough(cmakeVersion(bin))) return bin
  log(`${need}: using CMake ${CMAKE_WHEEL.version} from PyPI, in ${WHEEL_DIR}`)
  const file = fetchCached(wheel.file, wheel.sha256, () =>
    runPython(['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', '--disable-pip-version-check', '-d', P.CACHE, CMAKE_WHEEL.spec], need),
  )
  // Unpacked beside, then renamed: an interrupted unpack is never taken for a whole one.
  const partial = `${WHEEL_DIR}.partial`
  rmSync(partial, { recursive: true, force: true })
  runPython(['-m', 'zipfile', '-e', file, partial], need)
  // zipfile does not keep the executable bits.
  const partialBin = wheelBin(partial)
  if (process.platform !== 'win32') for (const name of readdirSync(partialBin)) chmodSync(join(partialBin, name), 0o755)
  rmSync(WHEEL_DIR, { recursive: true, force: true })
  renameSync(partial, WHEEL_DIR)
  if (!newEnough(cmakeVersion(bin))) throw new Error(`${bin}, unpacked from ${wheel.file}, does not run on this machine: install CMake ${MIN_CMAKE.join('.')} or later`)
  return bin
}

/** Runs Python, with a message that says what to install when there is none. */
function runPython(args, need) {
  const r = spawnSync(python(), args, { stdio: 'inherit', cwd: P.ROOT })
  if (r.error?.code === 'ENOENT') throw new Error(`${need}, and without it set-up fetches it from PyPI with ${python()}, which is not installed either: install CMake, or Python 3 with pip`)
  if (r.status !== 0) throw new Error(`${need}; fetching it from PyPI failed (${python()} ${args.join(' ')}: exit ${r.status ?? r.signal}): install CMake, or check the network`)
}

let found

/** The cmake to run: the PATH's if it is recent enough, else the wheel's. Looked up once per process. */
export function cmake() {
  if (found) return found
  const onPath = cmakeVersion('cmake')
  if (newEnough(onPath)) return (found = 'cmake')
  found = wheelCmake(onPath ? `the one on the PATH is ${onPath.join('.')}` : 'none is on the PATH')
  return found
}
