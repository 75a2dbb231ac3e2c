// The Windows Vulkan build (win32-x64-gnu's bin/vulkan/) under Wine, whose
// vulkan-1.dll forwards to the host's Vulkan: Mesa's lavapipe, which the
// Linux side names (VK_ICD_FILENAMES, GGML_VK_VISIBLE_DEVICES=0), with an X
// display (Wine's Vulkan needs one) and Mesa's shader cache where
// __test__/gpu.test.mjs keeps it warm: the same SPIR-V on the same device.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { before, test } from 'node:test'
import { CLIPS, T, VULKAN_DIR, VULKAN_WORKER, cpuTexts, run } from './gpu-common.mjs'

let cpu
before(async () => {
  assert.ok(existsSync(VULKAN_WORKER), `${VULKAN_DIR} has no worker: node scripts/prepare.mjs --cross builds it`)
  assert.ok(process.env.DISPLAY && process.env.GGML_VK_VISIBLE_DEVICES, 'the Linux side gives Wine an X display and names lavapipe')
  // Under Wine the first program of a session that touches the desktop
  // (here the engine's device probe) starts Wine's explorer.exe, which
  // inherits that program's stdout and stderr and keeps them open: the
  // probe reads only until the program exits, so this does not hold it.
  cpu = await cpuTexts()
}, T)

test("gpu 'auto' finds lavapipe through Wine's vulkan-1.dll, runs the Vulkan build, and writes the CPU build's text", T, async () => {
  const r = await run({ gpu: 'auto' }, CLIPS)
  assert.equal(r.initial.status.kind, 'vulkan', `${JSON.stringify(r.initial.status)} ${JSON.stringify(r.events)}`)
  assert.match(r.initial.status.name, /llvmpipe/)
  assert.ok(r.initial.status.memoryBytes > 0)
  assert.equal(r.initial.program.variant, 'vulkan')
  assert.equal(r.initial.program.path, VULKAN_WORKER)
  assert.deepEqual(r.texts, cpu)
  assert.deepEqual(r.events, [])
  for (const w of r.after.workers) assert.equal(w.kind, 'vulkan')
})

test("the 'cli' backend runs the Vulkan build's whisper-cli.exe on lavapipe, with the CPU build's text", T, async () => {
  const r = await run({ gpu: 'auto', backend: 'cli' }, [CLIPS[0]])
  assert.equal(r.initial.status.kind, 'vulkan', JSON.stringify(r.events))
  assert.equal(r.initial.program.path, `${VULKAN_DIR}\\whisper-cli.exe`)
  assert.deepEqual(r.texts, [cpu[0]])
})
