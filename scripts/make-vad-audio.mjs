#!/usr/bin/env node
// Regenerates __test__/fixtures/pauses.wav from pauses.json with sox: the
// committed speech clips (espeak-ng + sox, see make-test-audio.mjs) joined by
// seconds of digital silence, 16 kHz mono 16-bit. The file is committed; run
// this only to change it.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FIXTURES } from './paths.mjs'

const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { stdio: 'inherit' })
  if (r.status !== 0) throw new Error(`${cmd} failed; is it installed?`)
}

const layout = JSON.parse(readFileSync(join(FIXTURES, 'pauses.json'), 'utf8'))
const dir = mkdtempSync(join(tmpdir(), 'pw-pauses-'))
const pieces = layout.parts.map((part, i) => {
  const piece = join(dir, `${i}.wav`)
  if (part.clip) run('sox', [join(FIXTURES, part.clip), '-r', '16000', '-c', '1', '-b', '16', piece])
  else run('sox', ['-n', '-r', '16000', '-c', '1', '-b', '16', piece, 'trim', '0', String(part.silence)])
  return piece
})
run('sox', [...pieces, join(FIXTURES, layout.file)])
rmSync(dir, { recursive: true })
console.log(`${layout.file}: ${layout.parts.map((p) => p.clip ?? `${p.silence} s silence`).join(', ')}`)
