// The Silero VAD model for whisper.cpp's --vad (and whisper_vad_*): the
// published ggml-silero-v6.2.0.bin lives on Hugging Face, out of reach, so
// setup converts the same weights from the silero-vad wheel on PyPI with
// tools/silero-to-ggml. The conversion reproduces the published file byte for
// byte, so its size and sha256 are pinned to that file's.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import * as P from './paths.mjs'
import { fetchCached, log, python, run, sha256 } from './provision.mjs'

export const VAD_SOURCE = {
  /** silero-vad's package version; whisper.cpp's converter writes it into the file. */
  version: '6.2.0',
  wheel: {
    spec: 'silero-vad==6.2.0',
    file: 'silero_vad-6.2.0-py3-none-any.whl',
    sha256: '8a31f1e58e73cdc20820d842f757e678e0ae1b0ee1cb7b8aa50f20f8fd7f7638',
  },
  output: P.VAD_MODEL,
  /** ggml-org/whisper-vad's ggml-silero-v6.2.0.bin. */
  bytes: 885098,
  sha256: '2aa269b785eeb53a82983a20501ddf7c1d9c48e33ab63a41391ac6c9f7fb6987',
}

/** The converter binary, built from tools/silero-to-ggml. */
export function vadConverter() {
  run('cargo', ['build', '--release', '--quiet', '-p', 'silero-to-ggml'])
  return join(P.ROOT, 'target', 'release', P.exe('silero-to-ggml'))
}

const wheelDir = () => join(P.CACHE, `silero-vad-${VAD_SOURCE.version}`)

/** The unpacked wheel: silero_vad/data/silero_vad.jit and the dist-info with the version. */
export function sileroWheel() {
  const dir = wheelDir()
  if (existsSync(join(dir, 'silero_vad', 'data', 'silero_vad.jit'))) return dir
  const { spec, file, sha256: pinned } = VAD_SOURCE.wheel
  const wheel = fetchCached(file, pinned, () =>
    run(python(), ['-m', 'pip', 'download', '--quiet', '--no-deps', '--disable-pip-version-check', '-d', P.CACHE, spec]),
  )
  run(python(), ['-m', 'zipfile', '-e', wheel, dir])
  return dir
}

/** True when `file` is the pinned model (size first: cheap, then sha256). */
export function isPinnedVadModel(file) {
  return (
    existsSync(file) &&
    statSync(file).size === VAD_SOURCE.bytes &&
    sha256(readFileSync(file)) === VAD_SOURCE.sha256
  )
}

export function vadModel() {
  const { output } = VAD_SOURCE
  if (isPinnedVadModel(output)) {
    log(`${basename(output)} already converted`)
    return output
  }
  const wheel = sileroWheel()
  mkdirSync(P.MODELS, { recursive: true })
  log(`converting the Silero VAD model of silero-vad ${VAD_SOURCE.version} to ggml`)
  run(vadConverter(), [wheel, output])
  if (!isPinnedVadModel(output)) {
    // Never leave a wrong model where the tests and the engine would take it.
    rmSync(output, { force: true })
    rmSync(wheel, { recursive: true, force: true })
    throw new Error(
      `${output} is not the pinned ${VAD_SOURCE.bytes}-byte file (sha256 ${VAD_SOURCE.sha256}); deleted it and the unpacked wheel, run setup again`,
    )
  }
  return output
}
