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

/**
 * Control characters (C0, DEL, C1) and the bidirectional overrides that can
 * reorder what a terminal shows: a file name holding them must not move the
 * cursor, recolour, clear the screen or break a line of the live view.
 */
const CONTROL = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g
const NAMED = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/**
 * `text` safe to print on a terminal: control characters as escapes
 * (\x1b, \n, \u202e). With `newlines`, line breaks stay (a message's own
 * layout, whose names were escaped already).
 */
function printable(text, { newlines = false } = {}) {
  return String(text).replace(CONTROL, (c) => {
    if (newlines && c === '\n') return c
    if (NAMED[c]) return NAMED[c]
    const code = c.charCodeAt(0)
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`
  })
}

module.exports = { bar, bytes, clock, printable }
