// Crashes on Windows are seen as crashes: a program that dies on an
// instruction this CPU cannot run (as a CPU variant built for a newer CPU
// would) ends with STATUS_ILLEGAL_INSTRUCTION, which the engine names, as
// it names SIGILL on Linux, instead of taking the program for a working one.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { newEngine } from './common.mjs'

// FAKE, for fault injection: __test__/windows/fake-illegal-instruction.c,
// built with mingw-w64 by __test__/windows.test.mjs.
const FAKE = process.env.PW_FAKE_ILLEGAL_INSTRUCTION

for (const backend of ['cli', 'server']) {
  test(`${backend}: a program killed by an illegal instruction when started is refused with ERR_WHISPER_NOT_FOUND, and says so`, async () => {
    assert.ok(FAKE, 'the Linux side passes the FAKE program')
    const option = backend === 'cli' ? 'whisperPath' : 'serverPath'
    const engine = newEngine({ backend, poolSize: 1, [option]: FAKE })
    try {
      await assert.rejects(engine.initialize(), (err) => {
        assert.equal(err.code, 'ERR_WHISPER_NOT_FOUND', err.message)
        assert.match(err.message, /killed by STATUS_ILLEGAL_INSTRUCTION when started/)
        return true
      })
    } finally {
      await engine.shutdown().catch(() => {})
    }
  })
}
