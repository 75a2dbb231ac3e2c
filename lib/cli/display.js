'use strict'
// What `transcribe` shows while it works. On a terminal: a block redrawn in
// place (each worker's state, file and progress; files done of total; audio
// seconds per second; ETA) under a log of finished files. Elsewhere (a pipe,
// a CI log): one line per finished file. File names are printed with their
// control characters escaped (format.js printable).
const path = require('node:path')
const { clock, printable } = require('./format')

const REDRAW_MS = 250

class Display {
  constructor({ engine, files, tty, out }) {
    this.engine = engine
    this.total = files.length
    this.tty = tty
    this.out = out
    this.audio = new Map() // file -> seconds
    this.percent = new Map() // file -> progress
    this.finished = 0
    this.failedCount = 0
    this.audioDone = 0
    this.started = Date.now()
    this.lines = 0
    this.workers = []
    this.running = new Map() // worker id -> file
    this.over = new Set() // files done or failed
  }

  start() {
    this.started = Date.now()
    if (!this.tty) return
    this.out.write('\x1b[?25l') // hide the cursor while redrawing
    this.timer = setInterval(() => this.refresh(), REDRAW_MS)
    this.refresh()
  }

  stop() {
    clearInterval(this.timer)
    if (!this.tty || this.stopped) return
    this.stopped = true
    this.draw()
    this.out.write('\x1b[?25h\n')
  }

  queued(file, seconds) {
    this.audio.set(file, seconds)
  }

  progress(file, percent) {
    this.percent.set(file, percent)
  }

  done(file, target) {
    this.over.add(file)
    this.finished++
    this.audioDone += this.audio.get(file) ?? 0
    const seconds = ((Date.now() - this.started) / 1000).toFixed(1)
    this.log(`done    ${printable(file)} -> ${printable(target)} (${seconds} s)`)
  }

  failed(file, err) {
    this.over.add(file)
    this.finished++
    this.failedCount++
    this.log(`failed  ${printable(file)}: ${err.code ?? 'ERROR'}`)
  }

  /** A permanent line: above the live block on a terminal. */
  log(line) {
    if (!this.tty) {
      this.out.write(`${line}\n`)
      return
    }
    this.clear()
    this.out.write(`${line}\n`)
    this.draw()
  }

  async refresh() {
    if (this.refreshing || this.stopped) return
    this.refreshing = true
    try {
      const [workers, queue] = await Promise.all([this.engine.getWorkerStatuses(), this.engine.getQueueStatus()])
      this.workers = workers
      this.running = new Map(queue.processingRequests.map((r) => [r.workerId, r.audioFilePath]))
      if (!this.stopped) {
        this.clear()
        this.draw()
      }
    } catch {
      // The engine is shutting down: the last picture stays.
    } finally {
      this.refreshing = false
    }
  }

  clear() {
    if (this.lines > 0) this.out.write(`\x1b[${this.lines}F\x1b[J`)
    this.lines = 0
  }

  draw() {
    const elapsed = (Date.now() - this.started) / 1000
    const rate = elapsed > 0 ? this.audioDone / elapsed : 0
    let pending = 0
    for (const [file, seconds] of this.audio) {
      if (!this.over.has(file)) pending += seconds * (1 - (this.percent.get(file) ?? 0) / 100)
    }
    const eta = rate > 0 ? pending / rate : NaN
    const width = this.out.columns || 80
    const rows = this.workers.map((w) => {
      const file = this.running.get(w.id)
      const name = file ? printable(path.basename(file)) : ''
      const pct = file && this.percent.has(file) ? `${String(this.percent.get(file)).padStart(3)}%` : ''
      return `  ${w.id.padEnd(10)} ${w.state.padEnd(10)} ${name} ${pct}`.slice(0, width - 1)
    })
    const failed = this.failedCount ? `, ${this.failedCount} failed` : ''
    const summary = `files ${this.finished}/${this.total} done${failed} · ${rate.toFixed(1)} s of audio per s · ETA ${this.finished === this.total ? '0:00' : clock(eta)}`
    const block = [...rows, summary.slice(0, width - 1)]
    this.out.write(`${block.join('\n')}\n`)
    this.lines = block.length
  }
}

module.exports = { Display }
