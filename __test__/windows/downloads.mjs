// The model downloader on Windows: a folder with a drive letter, spaces and
// letters outside the ANSI code page, the atomic rename of the finished
// file, a resumed .part, a lock left by a dead process, %LOCALAPPDATA%.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { modelServer } from '../model-server.mjs'
import { pw, scratch } from './common.mjs'

const body = randomBytes(300_000)
const sha256 = createHash('sha256').update(body).digest('hex')
let server
let dir
before(async () => {
  server = await modelServer({ '/ggml-probe.bin': body })
  dir = scratch('models')
})
after(async () => {
  await server?.close()
  rmSync(dir, { recursive: true, force: true })
})

const spec = () => ({ url: `${server.base}/ggml-probe.bin`, sha256, size: body.length })

test('downloads into a folder with a drive letter, spaces and wide letters, and leaves only the model there', async () => {
  const into = join(dir, 'модели 日本')
  const seen = []
  const file = await pw.downloadModel(spec(), { dir: into, onProgress: (p) => seen.push(p.percent) })
  assert.equal(file, join(into, 'ggml-probe.bin'))
  assert.match(file, /^C:\\/)
  assert.ok(readFileSync(file).equals(body))
  assert.deepEqual(readdirSync(into), ['ggml-probe.bin'], 'no .part, .lock or temporary file is left')
  assert.equal(seen.at(-1), 100)
})

test('a .part left by an earlier call is resumed with a Range request, then renamed into place', async () => {
  const into = join(dir, 'resume')
  mkdirSync(into)
  writeFileSync(join(into, 'ggml-probe.bin.part'), body.subarray(0, 100_000))
  const before = server.requests.length
  const file = await pw.downloadModel(spec(), { dir: into })
  assert.ok(readFileSync(file).equals(body))
  assert.equal(server.requests.slice(before)[0].range, 'bytes=100000-')
  assert.deepEqual(readdirSync(into), ['ggml-probe.bin'])
})

test('a lock left by a process that died is taken over', async () => {
  const into = join(dir, 'stale lock')
  mkdirSync(into)
  const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' })
  const deadPid = Number(dead.stdout.trim())
  assert.ok(deadPid > 0)
  const host = (await import('node:os')).hostname().replace(/\s+/g, '_') || 'localhost'
  writeFileSync(join(into, 'ggml-probe.bin.lock'), `${deadPid} ${host} ${randomBytes(8).toString('hex')}\n`)
  const file = await pw.downloadModel(spec(), { dir: into })
  assert.ok(readFileSync(file).equals(body))
  assert.equal(existsSync(join(into, 'ggml-probe.bin.lock')), false)
})

test('a checksum mismatch deletes the .part and never puts a file at the final name', async () => {
  const into = join(dir, 'mismatch')
  await assert.rejects(pw.downloadModel({ ...spec(), sha256: '0'.repeat(64) }, { dir: into }), (err) => err.code === 'ERR_CHECKSUM_MISMATCH')
  assert.deepEqual(readdirSync(into), [])
})

test('the default folder is under %LOCALAPPDATA%', () => {
  assert.ok(process.env.LOCALAPPDATA)
  assert.equal(pw.defaultModelDir(), join(process.env.LOCALAPPDATA, 'persistent-whisper', 'models'))
})
