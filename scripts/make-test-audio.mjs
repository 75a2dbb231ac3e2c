#!/usr/bin/env node
// Regenerates __test__/fixtures/*.wav from clips.json with espeak-ng and sox
// (Debian: apt-get install espeak-ng sox), and fox.m4a (AAC, a format whisper
// cannot read) with ffmpeg. The clips are committed; run this only to change
// them. Slow, clear speech: at espeak's default rate tiny.en
// mishears words.
import { spawnSync } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { FIXTURES } from './paths.mjs'

const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { stdio: 'inherit' })
  if (r.status !== 0) throw new Error(`${cmd} failed; is it installed?`)
}

const { clips } = JSON.parse(readFileSync(join(FIXTURES, 'clips.json'), 'utf8'))
for (const clip of clips) {
  const raw = join(FIXTURES, `raw-${clip.file}`)
  run('espeak-ng', ['-v', 'en-us', '-s', '120', '-g', '5', '-w', raw, clip.sentence])
  run('sox', [raw, '-r', '16000', '-c', '1', '-b', '16', join(FIXTURES, clip.file)])
  rmSync(raw)
  console.log(`${clip.file}: ${clip.sentence}`)
}
run('ffmpeg', ['-loglevel', 'error', '-y', '-i', join(FIXTURES, 'fox.wav'), '-c:a', 'aac', '-b:a', '24k', join(FIXTURES, 'fox.m4a')])
console.log('fox.m4a: fox.wav as AAC')
