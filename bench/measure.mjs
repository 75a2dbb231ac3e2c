// Measuring one batch in the process that runs it: CPU seconds of this process
// and its children, peak RSS of all of them (sampled from a worker thread, so
// that a blocked event loop cannot hide a peak), and the event-loop stall.
import { readdirSync, readFileSync } from 'node:fs'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'

const TICKS_PER_SECOND = 100 // getconf CLK_TCK on Linux

function stat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return text.slice(text.lastIndexOf(')') + 2).split(' ')
  } catch {
    return null // exited while we looked
  }
}

/** Direct children of this process (whisper-cli, whisper-server). */
export function children(parent = process.pid) {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => Number(stat(pid)?.[1]) === parent)
    .map(Number)
}

/**
 * CPU ticks so far: this process, its reaped children (the kernel adds a
 * child's time to cutime/cstime when it is waited for), and the live
 * children, per pid (whose time counts once they are reaped).
 */
function cpuTicks() {
  const self = stat('self')
  const own = [11, 12, 13, 14].reduce((sum, i) => sum + Number(self[i]), 0)
  const live = new Map(children().map((pid) => [pid, Number(stat(pid)?.[11] ?? 0) + Number(stat(pid)?.[12] ?? 0)]))
  return { own, live }
}

/** Seconds of CPU used between two cpuTicks() readings. */
function cpuSeconds(before, after) {
  let ticks = after.own - before.own
  for (const [pid, t] of after.live) ticks += t - (before.live.get(pid) ?? 0)
  return ticks / TICKS_PER_SECOND
}

const SAMPLER = `
  const { parentPort, workerData } = require('node:worker_threads')
  const { readdirSync, readFileSync } = require('node:fs')
  const rssKb = (pid) => {
    try { return Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/' + pid + '/status', 'utf8'))?.[1] ?? 0) } catch { return 0 }
  }
  const ppid = (pid) => {
    try { const s = readFileSync('/proc/' + pid + '/stat', 'utf8'); return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) } catch { return -1 }
  }
  let peak = 0
  const timer = setInterval(() => {
    let total = workerData.childrenOnly ? 0 : rssKb(workerData.pid)
    for (const e of readdirSync('/proc')) if (/^\\d+$/.test(e) && ppid(e) === workerData.pid) total += rssKb(e)
    peak = Math.max(peak, total)
  }, 20)
  parentPort.on('message', () => { clearInterval(timer); parentPort.postMessage(peak) })
`

/**
 * Starts measuring; `stop()` returns { cpuSeconds, peakRssMb, maxStallMs }.
 * `childrenOnly`: peak RSS of the child processes alone (the whisper processes).
 */
export function startMeasuring({ childrenOnly = false } = {}) {
  const sampler = new Worker(SAMPLER, { eval: true, workerData: { pid: process.pid, childrenOnly } })
  const loop = monitorEventLoopDelay({ resolution: 10 })
  loop.enable()
  const cpuBefore = cpuTicks()
  return {
    async stop() {
      const cpu = cpuSeconds(cpuBefore, cpuTicks())
      loop.disable()
      const peakKb = await new Promise((resolve) => {
        sampler.once('message', resolve)
        sampler.postMessage('stop')
      })
      await sampler.terminate()
      return { cpuSeconds: cpu, peakRssMb: peakKb / 1024, maxStallMs: loop.max / 1e6 }
    },
  }
}

export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const rank = (p / 100) * (sorted.length - 1)
  const lo = Math.floor(rank)
  return sorted[lo] + (sorted[Math.ceil(rank)] - sorted[lo]) * (rank - lo)
}

export const median = (values) => percentile(values, 50)
