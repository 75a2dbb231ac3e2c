// gpu: false never starts the Vulkan build. The Linux side starts this
// node.exe with only a native vulkan-1.dll allowed (WINEDLLOVERRIDES=
// "vulkan-1=n"), and for this run puts a FAKE one (fault injection only:
// fake-vulkan-loader.c) in the prefix's system32, which creates the file
// PW_FAKE_VULKAN_MARK names when a process loads it, and ends that process.
import assert from 'node:assert/strict'
import { existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { scratch } from './common.mjs'
import { CLIPS, T, VULKAN_DIR, cpuTexts, run } from './gpu-common.mjs'

const dir = scratch('gpu-off')
after(() => rmSync(dir, { recursive: true, force: true }))

test("gpu: false never loads vulkan-1.dll, on any backend (gpu 'auto' does: the control)", T, async () => {
  const mark = join(dir, 'vulkan-1 was loaded')
  const env = { PW_FAKE_VULKAN_MARK: mark }
  const [cpu] = await cpuTexts([CLIPS[0]])
  const auto = await run({ gpu: 'auto' }, [], env)
  assert.ok(existsSync(mark), "gpu 'auto' loads the FAKE: the check sees a load")
  assert.equal(auto.initial.status.kind, 'cpu')
  rmSync(mark)

  for (const backend of ['worker', 'cli', 'server']) {
    const off = await run({ gpu: false, backend }, [CLIPS[0]], env)
    assert.ok(!existsSync(mark), `gpu: false with backend ${backend} loaded vulkan-1.dll`)
    assert.equal(off.initial.status.kind, 'cpu')
    assert.notEqual(off.initial.program.variant, 'vulkan')
    assert.ok(!off.initial.program.path.startsWith(VULKAN_DIR), off.initial.program.path)
    assert.deepEqual(off.texts, [cpu])
    assert.deepEqual(off.events, [], 'no fallback: the CPU is what was asked for')
  }
})
