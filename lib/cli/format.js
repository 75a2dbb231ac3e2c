'use strict'
// Small formatting helpers for the command line's output.

/** 1.5 GB, 142 MB, 12 kB. */
function bytes(n) {
  if (!Number.isFinite(n)) return '?'
  const units = ['B', 'kB', 'MB', 'GB', 'TB']
  let i = 0
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000
    i++
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`
}

/** [#####.....] for a percentage. */
function bar(percent, width) {
  const filled = Math.max(0, Math.min(width, Math.round((percent / 100) * width)))
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(percent)).padStart(3)}%`
}

/** m:ss or h:mm:ss. */
function clock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '?'
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, '0')
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`
}

module.exports = { bar, bytes, clock }
