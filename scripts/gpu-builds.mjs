// The GPU builds of a target (scripts/targets.mjs, GPU_VARIANTS): which ones
// set-up makes, and what each compiles against. Vulkan is part of the
// linux-x64-gnu package; CUDA is built only on request, from the CUDA
// toolkit on this machine, for this machine (never shipped):
//
//   npm run setup -- --cuda        (or PW_CUDA=1 npm run setup)
//
// The toolkit is found as CMake finds it: nvcc on the PATH, or CUDACXX /
// CUDA_PATH. Without a system toolkit, NVIDIA's PyPI wheels carry one:
// `pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-runtime-cu12
// nvidia-cublas-cu12` and point CUDACXX at the nvcc they install.
import { spawnSync } from 'node:child_process'
import { TARGETS } from './targets.mjs'
import { vulkanSdk } from './vulkan-sdk.mjs'

/** Whether this set-up was asked for the CUDA build. */
export const cudaRequested = () =>
  process.argv.includes('--cuda') || ['1', 'on', 'true'].includes(String(process.env.PW_CUDA ?? '').toLowerCase())

/** The GPU variants set-up builds for `target`. */
export function gpuVariants(target) {
  const shipped = TARGETS[target].gpu ?? []
  const cuda = cudaRequested() && target.startsWith('linux-x64') ? ['cuda'] : []
  return [...cuda, ...shipped]
}

function cudaToolkit() {
  const nvcc = process.env.CUDACXX || 'nvcc'
  const found = spawnSync(nvcc, ['--version'], { encoding: 'utf8' })
  if (found.error || found.status !== 0) {
    throw new Error(
      `the CUDA build needs the CUDA toolkit's nvcc (${nvcc} does not run): install the toolkit, or pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-runtime-cu12 nvidia-cublas-cu12 and set CUDACXX to its nvcc`,
    )
  }
  const architectures = process.env.PW_CUDA_ARCHITECTURES
  return {
    id: [found.stdout, architectures ?? ''],
    cmake: ['-DGGML_CUDA=ON', ...(architectures ? [`-DCMAKE_CUDA_ARCHITECTURES=${architectures}`] : [])],
    // For this machine only: the system's compilers, which nvcc accepts as its host compiler.
    systemToolchain: true,
  }
}

/** What GPU variant `gpu` of `target` compiles against with `toolchain`: { id, cmake, systemToolchain? }. */
export function gpuSdk(gpu, target, toolchain) {
  if (gpu === 'vulkan') return vulkanSdk(target, toolchain)
  if (gpu === 'cuda') return cudaToolkit()
  throw new Error(`no GPU build named ${gpu}`)
}
