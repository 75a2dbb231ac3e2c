// One change to whisper.cpp 1.9.1's source, applied where it is unpacked:
// whisper's abort callback reaches the compute backends, so a decode stops
// within one graph node instead of after a whole encoder pass (about a second
// on 2 cores with tiny.en, many with large models). whisper.cpp already does
// this for graphs computed without a scheduler; the encoder and decoder use
// one. Nothing else changes: programs that set no abort callback (whisper-cli)
// run exactly as before, and transcripts are the same.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const MARK = '// persistent-whisper: abort callback passed to the backends'

const EDITS = [
  {
    from: `static bool ggml_graph_compute_helper(
      ggml_backend_sched_t   sched,
        struct ggml_cgraph * graph,
                       int   n_threads,
                      bool   sched_reset = true) {
    for (int i = 0; i < ggml_backend_sched_get_n_backends(sched); ++i) {
        ggml_backend_t backend = ggml_backend_sched_get_backend(sched, i);
        ggml_backend_dev_t dev = ggml_backend_get_device(backend);
        ggml_backend_reg_t reg = dev ? ggml_backend_dev_backend_reg(dev) : nullptr;
`,
    to: `${MARK}
static bool ggml_graph_compute_helper(
      ggml_backend_sched_t   sched,
        struct ggml_cgraph * graph,
                       int   n_threads,
                      bool   sched_reset = true,
         ggml_abort_callback   abort_callback = nullptr,
                        void * abort_callback_data = nullptr) {
    for (int i = 0; i < ggml_backend_sched_get_n_backends(sched); ++i) {
        ggml_backend_t backend = ggml_backend_sched_get_backend(sched, i);
        ggml_backend_dev_t dev = ggml_backend_get_device(backend);
        ggml_backend_reg_t reg = dev ? ggml_backend_dev_backend_reg(dev) : nullptr;

        auto * fn_set_abort = reg ? (ggml_backend_set_abort_callback_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_abort_callback") : nullptr;
        if (fn_set_abort) {
            fn_set_abort(backend, abort_callback, abort_callback_data);
        }
`,
    count: 1,
  },
  {
    // The encoder's three graphs and the decoder's.
    from: 'if (!ggml_graph_compute_helper(sched, gf, n_threads)) {',
    to: 'if (!ggml_graph_compute_helper(sched, gf, n_threads, true, abort_callback, abort_callback_data)) {',
    count: 4,
  },
]

/** Applies the change to the source tree at `src` once; fails if 1.9.1's text is not there. */
export function patchWhisper(src) {
  const file = join(src, 'src', 'whisper.cpp')
  let text = readFileSync(file, 'utf8')
  if (text.includes(MARK)) return
  for (const { from, to, count } of EDITS) {
    const found = text.split(from).length - 1
    if (found !== count) throw new Error(`${file}: expected ${count} of ${JSON.stringify(from.slice(0, 60))}, found ${found}`)
    text = text.replaceAll(from, to)
  }
  writeFileSync(file, text)
}

export const PATCH_FILE = new URL(import.meta.url)
