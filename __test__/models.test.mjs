// Both backends with both provisioned models: the same transcript for the same
// file and options, and language detection with the multilingual base model.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BASE, BACKENDS, clips, missingPhrases, newEngine } from './helpers.mjs'

const T = { timeout: 300_000 }

async function transcribeAll(options, files) {
  const engine = newEngine({ poolSize: 2, threads: 1, ...options })
  await engine.initialize()
  try {
    return await Promise.all(files.map((c) => engine.transcribe(c.path)))
  } finally {
    await engine.shutdown()
  }
}

test('cli and server give the same transcript for the same file and options', T, async () => {
  // Each file on a fresh server: a long-lived whisper-server carries decoder
  // state from one request to the next (see README), a fresh whisper-cli not.
  for (const extraArgs of [[], ['-bs', '1', '-bo', '1']]) {
    const cli = await transcribeAll({ backend: 'cli', extraArgs }, clips)
    for (const [i, clip] of clips.entries()) {
      const [server] = await transcribeAll({ backend: 'server', extraArgs, poolSize: 1 }, [clip])
      assert.equal(server.text, cli[i].text, `${clip.file} with [${extraArgs}]`)
      assert.deepEqual(server.segments, cli[i].segments, `${clip.file} with [${extraArgs}]`)
    }
  }
})

for (const backend of BACKENDS) {
  test(`${backend}: base detects English on an English clip with language 'auto'`, T, async () => {
    const [fox, jfk] = await transcribeAll({ backend, modelPath: BASE, language: 'auto' }, [clips[0], clips.at(-1)])
    assert.equal(fox.language, 'en')
    assert.equal(jfk.language, 'en')
    assert.deepEqual(missingPhrases(jfk.text, clips.at(-1).keyPhrases), [], jfk.text)
  })
}
