'use strict'
// The official whisper.cpp ggml models: every model whisper.cpp 1.9.1's
// models/README.md publishes a checksum for (SHA-1), with the size it states
// there. The files live in the Hugging Face repository ggml-org/whisper.cpp
// under resolve/main/ggml-<name>.bin; PERSISTENT_WHISPER_MODEL_BASE_URL
// replaces that base (a mirror, or an offline server).

const DEFAULT_BASE_URL = 'https://huggingface.co/ggml-org/whisper.cpp/resolve/main'
/**
 * The sizes below are rounded (to 1 MiB, or 0.1 GiB above 1 GiB), so a
 * download may exceed them a little but never by this much: the bound that
 * stops a mirror that sends more (maxBytes).
 */
const SIZE_MARGIN = 0.1
const MiB = 1024 * 1024
const GiB = 1024 * MiB

/** [name, size as models/README.md states it, SHA-1] */
const MODELS = [
  ['tiny', 75 * MiB, 'bd577a113a864445d4c299885e0cb97d4ba92b5f'],
  ['tiny.en', 75 * MiB, 'c78c86eb1a8faa21b369bcd33207cc90d64ae9df'],
  ['base', 142 * MiB, '465707469ff3a37a2b9b8d8f89f2f99de7299dac'],
  ['base.en', 142 * MiB, '137c40403d78fd54d454da0f9bd998f78703390c'],
  ['small', 466 * MiB, '55356645c2b361a969dfd0ef2c5a50d530afd8d5'],
  ['small.en', 466 * MiB, 'db8a495a91d927739e50b3fc1cc4c6b8f6c2d022'],
  ['small.en-tdrz', 465 * MiB, 'b6c6e7e89af1a35c08e6de56b66ca6a02a2fdfa1'],
  ['medium', 1.5 * GiB, 'fd9727b6e1217c2f614f9b698455c4ffd82463b4'],
  ['medium.en', 1.5 * GiB, '8c30f0e44ce9560643ebd10bbe50cd20eafd3723'],
  ['large-v1', 2.9 * GiB, 'b1caaf735c4cc1429223d5a74f0f4d0b9b59a299'],
  ['large-v2', 2.9 * GiB, '0f4c8e34f21cf1a914c59d8b3ce882345ad349d6'],
  ['large-v2-q5_0', 1.1 * GiB, '00e39f2196344e901b3a2bd5814807a769bd1630'],
  ['large-v3', 2.9 * GiB, 'ad82bf6a9043ceed055076d0fd39f5f186ff8062'],
  ['large-v3-q5_0', 1.1 * GiB, 'e6e2ed78495d403bef4b7cff42ef4aaadcfea8de'],
  ['large-v3-turbo', 1.5 * GiB, '4af2b29d7ec73d781377bfd1758ca957a807e941'],
  ['large-v3-turbo-q5_0', 547 * MiB, 'e050f7970618a659205450ad97eb95a18d69c9ee'],
]

/**
 * Silero voice activity detection models for whisper.cpp (vad: true, live
 * dictation): ggml-org/whisper-vad's files, by SHA-256 (that repository
 * publishes no SHA-1). The converter in tools/silero-to-ggml reproduces this
 * file byte for byte from the silero-vad wheel (scripts/vad-model.mjs).
 * [name, exact size, SHA-256]
 */
const VAD_BASE_URL = 'https://huggingface.co/ggml-org/whisper-vad/resolve/main'
const VAD_MODELS = [['silero-v6.2.0', 885098, '2aa269b785eeb53a82983a20501ddf7c1d9c48e33ab63a41391ac6c9f7fb6987']]

/**
 * The base URL catalogue files are fetched from, without a trailing slash;
 * PERSISTENT_WHISPER_MODEL_BASE_URL (a mirror holding both) replaces either.
 */
function modelBaseUrl(defaultBase = DEFAULT_BASE_URL) {
  const custom = process.env.PERSISTENT_WHISPER_MODEL_BASE_URL
  return (custom && custom.trim() ? custom.trim() : defaultBase).replace(/\/+$/, '')
}

function vadEntry(name) {
  const found = VAD_MODELS.find(([n]) => n === name)
  if (!found) return undefined
  const [, bytes, sha256] = found
  const file = `ggml-${name}.bin`
  return { name, kind: 'vad', file, url: `${modelBaseUrl(VAD_BASE_URL)}/${file}`, approxBytes: bytes, maxBytes: bytes, sha256, multilingual: true, quantized: false }
}

/** The catalogue entry called `name` (a whisper model, or a VAD model), or undefined. */
function catalogueEntry(name) {
  const found = MODELS.find(([n]) => n === name)
  if (!found) return vadEntry(name)
  const [, approxBytes, sha1] = found
  const file = `ggml-${name}.bin`
  return {
    name,
    kind: 'whisper',
    file,
    url: `${modelBaseUrl()}/${file}`,
    approxBytes: Math.round(approxBytes),
    maxBytes: Math.ceil(approxBytes * (1 + SIZE_MARGIN)),
    sha1,
    multilingual: !name.includes('.en'),
    quantized: /-q\d/.test(name),
  }
}

/** The whisper models, by name (what modelPath may name). */
const MODEL_NAMES = Object.freeze(MODELS.map(([name]) => name))
/** The voice activity detection models, by name. */
const VAD_MODEL_NAMES = Object.freeze(VAD_MODELS.map(([name]) => name))

module.exports = { DEFAULT_BASE_URL, MODEL_NAMES, VAD_MODEL_NAMES, catalogueEntry, modelBaseUrl }
