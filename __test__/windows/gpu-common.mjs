// Shared by the Windows GPU files (gpu*.mjs): each engine runs in a node.exe
// of its own (__test__/gpu-run.mjs), and each file in a node.exe whose
// Linux environment the Linux side chose (__test__/windows.test.mjs): Wine
// takes a process's DLL overrides and Vulkan driver from the Linux
// environment it was started in, not from the Windows environment a parent
// gives it, so each case is a file of its own.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { runEngine } from '../gpu-run-client.mjs'
import { FIXTURES, ROOT, TINY_EN } from './common.mjs'

export const VULKAN_DIR = join(ROOT, '.whisper', 'targets', 'win32-x64-gnu', 'bin', 'vulkan')
export const VULKAN_WORKER = join(VULKAN_DIR, 'persistent-whisper-worker.exe')
export const CLIPS = ['color.wav', 'weather.wav'].map((f) => join(FIXTURES, f))
export const T = { timeout: 1_500_000 }

/** One engine in a node.exe of its own with `env` added: its JSON report and stderr (the engine's warnings, at logLevel 'warn'). */
export const run = (options, clips, env = {}) =>
  runEngine({ modelPath: TINY_EN, maxWorkers: 1, timeout: 900_000, logLevel: 'warn', ...options }, clips, env)

/** The CPU build's texts of `clips`, to compare with. */
export async function cpuTexts(clips = CLIPS) {
  const { texts } = await run({ gpu: false }, clips)
  assert.equal(texts.length, clips.length)
  return texts
}
