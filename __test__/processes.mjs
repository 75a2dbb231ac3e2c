// Whether a process still runs, on every platform the tests run on: Linux
// reads /proc, macOS asks ps (it has no /proc), Windows has no zombies.
// Never "gone" for want of a way to look: that would let a check pass
// without checking.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'

/** True when no process with this pid is running (a zombie waiting for its reaper counts as gone). */
export function isGone(pid) {
  try {
    process.kill(pid, 0)
  } catch (err) {
    return err.code === 'ESRCH'
  }
  if (process.platform === 'win32') return false
  return isZombie(pid)
}

function isZombie(pid) {
  if (existsSync('/proc/self/stat')) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
    } catch {
      return true // it exited after kill(0) found it
    }
  }
  const ps = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' })
  const state = ps.stdout?.trim() ?? ''
  if (state) return state.startsWith('Z')
  // ps exits 1 with no line for a pid that has gone; anything else is no answer.
  if (ps.status === 1 && !ps.error && !ps.stderr?.trim()) return true
  throw new Error(`cannot tell whether pid ${pid} runs: no /proc here, and ps -p failed (${ps.error?.message ?? ps.stderr?.trim() ?? `exit ${ps.status}`})`)
}
