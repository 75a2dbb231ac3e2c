// A Windows machine without a Vulkan loader (no graphics driver installed
// one): the Linux side starts this node.exe with Wine's vulkan-1.dll
// switched off (WINEDLLOVERRIDES="vulkan-1="), so a program importing it
// ends as on Windows, with STATUS_DLL_NOT_FOUND (and no dialog: the engine
// starts it with SEM_FAILCRITICALERRORS, src/process/error_mode.rs).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CLIPS, T, cpuTexts, run } from './gpu-common.mjs'

test("without vulkan-1.dll, gpu 'auto' falls back to the CPU build, says why (a warning and deviceFallback), and transcribes", T, async () => {
  const cpu = await cpuTexts()
  const r = await run({ gpu: 'auto' }, CLIPS)
  assert.equal(r.initial.status.kind, 'cpu')
  assert.notEqual(r.initial.program.variant, 'vulkan')
  assert.deepEqual(r.texts, cpu)
  const fallbacks = r.events.filter((e) => e.type === 'deviceFallback')
  assert.equal(fallbacks.length, 1, JSON.stringify(r.events))
  // The loader's exit status, read as what it means here.
  assert.match(fallbacks[0].message, /no Vulkan loader here: vulkan-1\.dll.* is missing \(it exited with STATUS_DLL_NOT_FOUND\)/)
  assert.equal(fallbacks[0].device.kind, 'cpu')
  assert.match(r.stderr, /\[\w+\] .*no Vulkan loader here: vulkan-1\.dll/, 'the warning, at the default log level')
  for (const w of r.after.workers) assert.equal(w.kind, 'cpu')
})
