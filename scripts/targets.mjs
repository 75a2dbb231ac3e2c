// The platforms persistent-whisper ships for: their napi target, and the CPU
// variants of whisper.cpp each platform package carries. The engine picks the
// best variant the CPU can run at start-up (src/locate/variant.rs holds the
// same names with the CPU features each one needs).

/** ggml's instruction-set switches, all off: each variant turns on what it needs. */
const X86_OFF = ['SSE42', 'AVX', 'AVX2', 'FMA', 'F16C', 'BMI2', 'AVX512'].map((f) => `-DGGML_${f}=OFF`)
const x86 = (...on) => [...X86_OFF, ...on.map((f) => `-DGGML_${f}=ON`)]

/** Variant name -> the CMake flags of its whisper.cpp build. */
export const VARIANTS = {
  // x86-64-v2: SSE4.2, the baseline of every x86-64 CPU since 2009.
  'x86-64-v2': x86('SSE42'),
  // x86-64-v3: AVX2 + FMA + F16C (Haswell, Zen and later).
  'x86-64-v3': x86('SSE42', 'AVX', 'AVX2', 'FMA', 'F16C', 'BMI2'),
  // x86-64-v4: AVX-512 F/CD/BW/DQ/VL (Skylake-X, Ice Lake, Zen 4 and later).
  'x86-64-v4': x86('SSE42', 'AVX', 'AVX2', 'FMA', 'F16C', 'BMI2', 'AVX512'),
  // Baseline 64-bit Arm: NEON is part of armv8-a.
  'armv8-a': ['-DGGML_CPU_ARM_ARCH=armv8-a'],
  // Apple silicon: Metal for the GPU (its shader library embedded), Accelerate for BLAS.
  'apple-arm64': ['-DGGML_METAL=ON', '-DGGML_METAL_EMBED_LIBRARY=ON', '-DGGML_ACCELERATE=ON', '-DGGML_BLAS=ON', '-DGGML_BLAS_VENDOR=Apple'],
}

/**
 * GPU builds, each in a variant folder of its own (bin/<name>/), apart from
 * the CPU variants: their programs link to a GPU library (the Vulkan loader,
 * CUDA's runtime) that a machine may lack, and must never stop the CPU build
 * from running. The engine picks one at run time only where it works
 * (src/locate/device.rs). Each is built on a CPU variant's flags, for what
 * the GPU leaves to the CPU; its own flags come from scripts/gpu-builds.mjs.
 */
export const GPU_VARIANTS = {
  // NVIDIA, AMD and Intel GPUs on Linux and Windows: the Vulkan loader
  // (libvulkan.so.1, vulkan-1.dll) comes with the graphics driver.
  vulkan: { cpu: 'x86-64-v2' },
  // NVIDIA's own: built from source where the CUDA toolkit is
  // (npm run setup -- --cuda), never shipped.
  cuda: { cpu: 'x86-64-v2' },
}

const APPLE_BLAS = ['-DGGML_ACCELERATE=ON', '-DGGML_BLAS=ON', '-DGGML_BLAS_VENDOR=Apple']

/**
 * napi platform -> target triple, the variants its package carries, and the
 * CMake flags of every build for it. Linux builds use OpenMP (GCC's libgomp,
 * linked statically): measured faster than ggml's own thread pool, above all
 * beside other work, as its waiting threads spin briefly and then sleep
 * (`npm run bench -- --only threading`; the engine's settings in
 * src/process/mod.rs). Apple clang has no OpenMP and MSVC's needs a DLL
 * beside the programs, so those use ggml's own thread pool.
 */
export const TARGETS = {
  'linux-x64-gnu': {
    triple: 'x86_64-unknown-linux-gnu',
    variants: ['x86-64-v2', 'x86-64-v3', 'x86-64-v4'],
    cmake: ['-DGGML_OPENMP=ON'],
    gpu: ['vulkan'],
  },
  'linux-arm64-gnu': {
    triple: 'aarch64-unknown-linux-gnu',
    variants: ['armv8-a'],
    cmake: ['-DGGML_OPENMP=ON'],
  },
  'darwin-x64': {
    triple: 'x86_64-apple-darwin',
    variants: ['x86-64-v2', 'x86-64-v3'],
    // Built on Apple silicon too: say which CPU the build is for.
    cmake: ['-DGGML_OPENMP=OFF', '-DCMAKE_OSX_ARCHITECTURES=x86_64', '-DCMAKE_SYSTEM_PROCESSOR=x86_64', '-DGGML_METAL=OFF', ...APPLE_BLAS],
  },
  'darwin-arm64': {
    triple: 'aarch64-apple-darwin',
    variants: ['apple-arm64'],
    cmake: ['-DGGML_OPENMP=OFF', '-DCMAKE_OSX_ARCHITECTURES=arm64', '-DCMAKE_SYSTEM_PROCESSOR=arm64'],
  },
  'win32-x64-msvc': {
    triple: 'x86_64-pc-windows-msvc',
    variants: ['x86-64-v2', 'x86-64-v3', 'x86-64-v4'],
    // The C runtime linked statically: nothing to install beside the programs,
    // and the worker's shim (/MT, worker/build.rs) links with the libraries.
    // whisper.cpp asks for CMake 3.5, which leaves policy CMP0091 OLD and the
    // runtime setting ignored (/MD): the policy is set NEW from outside
    // (__test__/release-checks.test.mjs sees /MT in every compile command).
    cmake: ['-DGGML_OPENMP=OFF', '-DCMAKE_POLICY_DEFAULT_CMP0091=NEW', '-DCMAKE_MSVC_RUNTIME_LIBRARY=MultiThreaded'],
    // Built on the release's Windows runner with LunarG's Vulkan SDK (scripts/vulkan-sdk.mjs).
    gpu: ['vulkan'],
  },
  // Never published: the Windows code built here with mingw-w64
  // (scripts/windows-toolchain.mjs) and tested under Wine (scripts/wine.mjs).
  // Only the variants the tests run: the baseline and AVX2.
  'win32-x64-gnu': {
    triple: 'x86_64-pc-windows-gnu',
    variants: ['x86-64-v2', 'x86-64-v3'],
    cmake: ['-DGGML_OPENMP=OFF'],
    // Run under Wine, whose vulkan-1.dll forwards to the host's Vulkan (lavapipe in the tests).
    gpu: ['vulkan'],
    testOnly: true,
  },
}

/** The platforms with a persistent-whisper-<platform> package on npm. */
export const PUBLISHED = Object.keys(TARGETS).filter((t) => !TARGETS[t].testOnly)

/** The napi platform of the machine this runs on. */
export function hostTarget() {
  const abi = process.platform === 'linux' ? '-gnu' : process.platform === 'win32' ? '-msvc' : ''
  const name = `${process.platform}-${process.arch}${abi}`
  if (!TARGETS[name]) throw new Error(`${name} is not a platform persistent-whisper builds for (${Object.keys(TARGETS).join(', ')})`)
  return name
}

/** whisper.cpp's programs a platform package carries in each variant folder... */
export const PROGRAMS = ['whisper-cli', 'whisper-server']

/** ...and the project's own worker program (worker/), linked with the same build. */
export const WORKER = 'persistent-whisper-worker'

export const exe = (target, name) => (target.startsWith('win32') ? `${name}.exe` : name)

/** The variant folders (bin/<name>/) a platform package ships: its CPU variants and its GPU builds. */
export const shippedVariants = (target) => [...TARGETS[target].variants, ...(TARGETS[target].gpu ?? [])]

/**
 * Every file of a platform package, as its package.json's `files` lists
 * them: one by one, since napi prepublish checks each entry is a file (a
 * folder such as `bin` fails the release).
 */
export function packageFiles(target) {
  const programs = [...PROGRAMS, WORKER].map((name) => exe(target, name))
  return [
    `persistent-whisper.${target}.node`,
    ...shippedVariants(target).flatMap((variant) => programs.map((program) => `bin/${variant}/${program}`)),
    'LICENSE',
    'LICENSE.whisper.cpp',
    'THIRD-PARTY-NOTICES.md',
  ]
}
