// bench/results.md and bench/results.svg from one run's report.
import { median, percentile } from './measure.mjs'

const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–')
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–')
const ms = (x) => `${Math.round(x)} ms`

function overheadSummary(o) {
  const tenth = (xs) => Math.max(1, Math.floor(xs.length / 10))
  return {
    n: o.submitUs.length,
    submitUs: median(o.submitUs),
    submitFirstUs: median(o.submitUs.slice(0, tenth(o.submitUs))),
    submitLastUs: median(o.submitUs.slice(-tenth(o.submitUs))),
    processingMs: median(o.processingMs),
    poolUs: median(o.poolMs) * 1000,
    // All requests were queued at once: the first ones ran while the queue was long.
    poolLongQueueUs: median(o.poolMs.slice(0, tenth(o.poolMs))) * 1000,
    poolShortQueueUs: median(o.poolMs.slice(-tenth(o.poolMs))) * 1000,
    perRequestMs: o.makespanMs / o.submitUs.length,
  }
}

export function markdown(r) {
  const o = overheadSummary(r.overhead)
  const lines = [
    '# Benchmark results',
    '',
    `Written by \`npm run bench${r.quick ? ' -- --quick' : ''}\` on ${r.date}: ${r.machine}; ${r.whisper}; model ${r.model}.`,
    `Every figure is the median of ${r.rounds} interleaved round${r.rounds > 1 ? 's' : ''}, each measurement in a fresh process.`,
    'Every variant decodes with whisper-cli\'s defaults: beam search of 5, best-of 5, temperature 0 with',
    'fallback steps of 0.2, language en. Machines here are shared: compare the rows of one run, not runs.',
    '',
    `## Batch: ${r.files.length} files (${f1(r.audioTotal)} s of speech) submitted at once`,
    '',
    `The files: ${[...new Set(r.files)].join(', ')}, repeated. The machine's limit is the summed`,
    `single-thread processing time of these files (one whisper-server, \`-t 1\`, model loaded) divided`,
    `by the ${r.cores} cores: **${f1(r.limitMs / 1000)} s**. "× limit" is makespan / limit; the engine runs ${r.poolSize} workers.`,
    '',
    '| variant | makespan | speed-up vs before | audio s per s | latency p50 | latency p95 | CPU | peak RSS (all processes) | max event-loop stall | × limit |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...r.batch.map(
      (b) =>
        `| ${b.label} | ${f1(b.makespan)} s | ${f2(b.speedup)}× | ${f1(b.throughput)} | ${f1(b.p50)} s | ${f1(b.p95)} s | ${f1(b.cpu)} s | ${Math.round(b.rss)} MB | ${ms(b.stall)} | ${f2(b.vsLimit)} |`,
    ),
    '',
    `## Dictation: ${r.dictation.clip} (${f1(r.dictation.seconds)} s), one request at a time into an idle, started pool`,
    '',
    '| variant | latency p50 | latency p95 | requests |',
    '|---|---:|---:|---:|',
    ...r.dictation.rows.map((d) => `| ${d.label} | ${ms(d.p50)} | ${ms(d.p95)} | ${d.n} |`),
    '',
  ]
  if (r.sizes.length) {
    const get = (model, backend) => r.sizes.find((s) => s.model === model && s.backend === backend)
    lines.push(
      `## Per-request time by model and backend: one request at a time, 1 worker × ${r.cores} threads`,
      '',
      '| model | cli p50 | cli p95 | server p50 | server p95 | server saves |',
      '|---|---:|---:|---:|---:|---:|',
      ...['tiny.en', 'base'].map((m) => {
        const c = get(m, 'cli')
        const s = get(m, 'server')
        return `| ${m} | ${ms(c.p50)} | ${ms(c.p95)} | ${ms(s.p50)} | ${ms(s.p95)} | ${Math.round((1 - s.p50 / c.p50) * 100)}% |`
      }),
      '',
    )
  }
  if (r.memory) {
    lines.push(
      `## Memory: ${r.memory.concurrent} requests for ${r.memory.clip} at once, peak RSS of the whisper processes`,
      '',
      `From \`initialize()\` to the last result, the engine's child processes only, against one whisper-cli`,
      'run on the same file. The target for the worker backend: at most 1.5 × one whisper-cli. "one process',
      'per worker" is the worker backend with `processes` = the pool size (the default is 1).',
      '',
      '| model | one whisper-cli | cli backend | server backend | worker backend | worker, one process per worker |',
      '|---|---:|---:|---:|---:|---:|',
      ...r.memory.rows.map((m) => {
        const cell = (b) => (b ? `${Math.round(b.mb)} MB (${f2(b.ratio)}×)` : 'n/a')
        return `| ${m.model} | ${Math.round(m.one)} MB | ${cell(m.cli)} | ${cell(m.server)} | ${cell(m.worker)} | ${cell(m['worker-processes'])} |`
      }),
      '',
    )
  }
  if (r.aborts?.length) {
    lines.push(
      '## Abort: a 2-minute file aborted after 1.5 s on a one-worker engine, then a short clip',
      '',
      '"next request" is the clip right after the abort; "idle" the same clip on the idle engine before it.',
      '',
      '| backend | abort() to rejection (median / max) | next request | idle |',
      '|---|---:|---:|---:|',
      ...r.aborts.map((a) => `| ${a.backend} | ${f1(a.abortMs)} / ${f1(a.maxAbortMs)} ms | ${ms(a.nextMs)} | ${ms(a.idleMs)} |`),
      '',
    )
  }
  if (r.portable?.length) {
    lines.push(
      `## Portable builds against a native one: ${r.portableFiles.length} files one at a time, whisper-cli -t ${r.cores}`,
      '',
      'The platform package ships one build per CPU level, none tuned to this machine; the engine runs the best',
      'one the CPU supports. The reference is whisper.cpp built here with `-march=native` (GGML_NATIVE).',
      '',
      '| whisper-cli | total time | vs native |',
      '|---|---:|---:|',
      ...r.portable.map((p) => `| ${p.picked ? `**${p.label}**` : p.label} | ${ms(p.ms)} | ${f2(p.vsNative)}× |`),
      '',
    )
  }
  lines.push(
    `## The engine's own cost: ${o.n} requests to the fake whisper-server, which answers at once`,
    '',
    '| what | median |',
    '|---|---:|',
    `| \`transcribe()\` call (check the file, queue, dispatch) | ${f1(o.submitUs)} µs |`,
    `| ... the first 10% of calls (queue still short) | ${f1(o.submitFirstUs)} µs |`,
    `| ... the last 10% (${Math.round(o.n * 0.9)} or more requests queued) | ${f1(o.submitLastUs)} µs |`,
    `| one request to the fake server and its answer (the worker's processing time) | ${f2(o.processingMs)} ms |`,
    `| the pool's work between two requests on a worker (settle one, dispatch the next) | ${f1(o.poolUs)} µs |`,
    `| ... while ${Math.round(o.n * 0.9)} or more requests wait | ${f1(o.poolLongQueueUs)} µs |`,
    `| ... while fewer than ${Math.round(o.n * 0.1)} wait | ${f1(o.poolShortQueueUs)} µs |`,
    `| whole run / requests (one worker) | ${f2(o.perRequestMs)} ms |`,
    '',
    `Total run time: ${Math.round(r.durationS)} s.`,
    '',
  )
  return lines.join('\n')
}

/** Horizontal bars: makespan, and latency p50 with p95, per batch variant. */
export function svg(r) {
  const rows = r.batch
  const labelW = 330
  const barW = 420
  const rowH = 22
  const charts = [
    {
      title: `Batch of ${r.files.length} files: makespan (s), lower is better; dashed: the machine's limit`,
      values: rows.map((b) => [b.makespan]),
      mark: r.limitMs / 1000,
    },
    { title: 'Latency per request (s): p50, and p95 as the light bar', values: rows.map((b) => [b.p50, b.p95]) },
  ]
  const height = charts.length * (rows.length * rowH + 50) + 30
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${labelW + barW + 80}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="18" font-size="13" font-weight="bold">persistent-whisper benchmark, ${r.date}: ${r.cores} cores, ${r.model}</text>`,
  ]
  let y = 40
  for (const chart of charts) {
    const max = Math.max(...chart.values.flat())
    out.push(`<text x="10" y="${y}" font-weight="bold">${chart.title}</text>`)
    y += 12
    rows.forEach((b, i) => {
      const [main, light] = chart.values[i]
      const top = y + i * rowH
      out.push(`<text x="${labelW - 6}" y="${top + 15}" text-anchor="end">${b.label.replace(/&/g, '&amp;')}</text>`)
      if (light !== undefined) {
        out.push(`<rect x="${labelW}" y="${top + 3}" width="${(light / max) * barW}" height="${rowH - 6}" fill="#9ecae1"/>`)
      }
      const color = b.name.startsWith('engine') ? '#2171b5' : '#969696'
      out.push(`<rect x="${labelW}" y="${top + 3}" width="${(main / max) * barW}" height="${rowH - 6}" fill="${color}"/>`)
      const shown = light !== undefined ? `${main.toFixed(1)} / ${light.toFixed(1)}` : main.toFixed(1)
      out.push(`<text x="${labelW + ((light ?? main) / max) * barW + 4}" y="${top + 15}">${shown}</text>`)
    })
    if (chart.mark) {
      const x = labelW + (chart.mark / max) * barW
      out.push(`<line x1="${x}" y1="${y}" x2="${x}" y2="${y + rows.length * rowH}" stroke="#d94801" stroke-dasharray="4 3"/>`)
    }
    y += rows.length * rowH + 38
  }
  out.push('</svg>', '')
  return out.join('\n')
}

export { percentile }
