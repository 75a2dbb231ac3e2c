// Changes to whisper.cpp 1.9.1's source, applied where it is unpacked.
// - whisper's abort callback reaches the compute backends, so a decode stops
//   within one graph node instead of after a whole encoder pass (about a
//   second on 2 cores with tiny.en, many with large models). whisper.cpp
//   already does this for graphs computed without a scheduler; the encoder
//   and decoder use one.
// The rest is switched on only by persistent-whisper-worker, which runs
// several decodes on one model:
// - A decode's thread count can change while it runs: whisper_full reads it
//   before each encoder and decoder step from a per-thread source
//   (whisper_pw_set_thread_count), so the engine can give a lone request
//   every core and split them when others start.
// - KV caches on fresh zeroed pages (whisper_pw_set_lazy_kv, CPU only):
//   whisper clears its caches with memset, which makes every page resident,
//   although beam search over-allocates the self-attention cache 7-fold and
//   a decode uses a fraction of it. Zeroed pages need no clear; unused ones
//   stay out of memory.
// - Encoder compute buffers shared by a context's states
//   (whisper_pw_share_encoders): at most N encoders run at once, each on a
//   set of buffers from a pool, instead of every state holding its own
//   (about 35 MB with tiny.en, 60 MB with base). The worker sets N to its
//   cores, so no encoder waits while a core is free.
// Programs that switch none on (whisper-cli, whisper-server) run exactly as
// before, and transcripts are the same.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const MARK = '// persistent-whisper: abort callback passed to the backends'
/** Any version of the changes: an older one means the source is unpacked again. */
const ANY_MARK = '// persistent-whisper:'
const VERSION_MARK = '// persistent-whisper: changes, version 3'
const THREADS_MARK = '// persistent-whisper: a running decode\'s thread count'

const EDITS = [
  {
    from: '#include <atomic>\n',
    to: `#include <atomic>
${VERSION_MARK}
#include <condition_variable>
#include <memory>
#include <mutex>
#if !defined(_WIN32)
#include <sys/mman.h>
#endif
`,
    count: 1,
  },
  {
    // The pool lives in the context; defined with the encoder below.
    from: 'struct whisper_context {\n',
    to: `struct pw_encoder_pool;

struct whisper_context {
    std::shared_ptr<pw_encoder_pool> pw_encoders; // persistent-whisper: null unless shared
`,
    count: 1,
  },
  {
    from: `    ggml_backend_buffer_t buffer = nullptr;

    std::vector<uint8_t> ctx_buf;
};`,
    to: `    ggml_backend_buffer_t buffer = nullptr;

    std::vector<uint8_t> ctx_buf;

    // persistent-whisper: the zeroed pages holding k and v, if any
    void * pw_pages = nullptr;
    size_t pw_pages_size = 0;
};`,
    count: 1,
  },
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
    from: 'static bool whisper_kv_cache_init(',
    to: `${THREADS_MARK}, set per calling thread by
// persistent-whisper-worker (nullptr: the params' n_threads, as before).
static thread_local const std::atomic<int32_t> * pw_thread_count = nullptr;

extern "C" void whisper_pw_set_thread_count(const int32_t * count) {
    pw_thread_count = reinterpret_cast<const std::atomic<int32_t> *>(count);
}

static int pw_threads(int n_threads) {
    if (pw_thread_count != nullptr) {
        const int32_t n = pw_thread_count->load(std::memory_order_relaxed);
        if (n > 0) {
            return n;
        }
    }
    return n_threads;
}

// persistent-whisper: KV caches on fresh zeroed pages, where switched on.
static std::atomic<bool> pw_lazy_kv{false};

extern "C" void whisper_pw_set_lazy_kv(bool on) {
    pw_lazy_kv = on;
}

static void pw_free_pages(void * pages, size_t size) {
#if !defined(_WIN32)
    munmap(pages, size);
#else
    (void) pages;
    (void) size;
#endif
}

// k and v on anonymous pages, which the kernel zero-fills on first touch:
// no clear needed, and untouched cells cost no memory.
static bool pw_kv_on_zeroed_pages(struct whisper_kv_cache & cache, ggml_backend_t backend) {
#if !defined(_WIN32)
    ggml_backend_dev_t dev = ggml_backend_get_device(backend);
    if (!pw_lazy_kv || dev == nullptr || ggml_backend_dev_type(dev) != GGML_BACKEND_DEVICE_TYPE_CPU) {
        return false;
    }
    const size_t page = 4096;
    const size_t k_size = GGML_PAD(ggml_nbytes(cache.k), page);
    const size_t size = k_size + GGML_PAD(ggml_nbytes(cache.v), page);
    void * pages = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pages == MAP_FAILED) {
        return false;
    }
    cache.buffer = ggml_backend_cpu_buffer_from_ptr(pages, size);
    if (cache.buffer == nullptr ||
        ggml_backend_tensor_alloc(cache.buffer, cache.k, pages) != GGML_STATUS_SUCCESS ||
        ggml_backend_tensor_alloc(cache.buffer, cache.v, (char *) pages + k_size) != GGML_STATUS_SUCCESS) {
        ggml_backend_buffer_free(cache.buffer);
        cache.buffer = nullptr;
        munmap(pages, size);
        return false;
    }
    cache.pw_pages = pages;
    cache.pw_pages_size = size;
    return true;
#else
    (void) cache;
    (void) backend;
    return false;
#endif
}

static bool whisper_kv_cache_init(`,
    count: 1,
  },
  {
    from: `    cache.buffer = ggml_backend_alloc_ctx_tensors(ctx, backend);
    if (!cache.buffer) {
        WHISPER_LOG_ERROR("%s: failed to allocate memory for the kv cache\\n", __func__);
        return false;
    }

    ggml_backend_buffer_clear(cache.buffer, 0);
`,
    to: `    if (!pw_kv_on_zeroed_pages(cache, backend)) {
    cache.buffer = ggml_backend_alloc_ctx_tensors(ctx, backend);
    if (!cache.buffer) {
        WHISPER_LOG_ERROR("%s: failed to allocate memory for the kv cache\\n", __func__);
        return false;
    }

    ggml_backend_buffer_clear(cache.buffer, 0);
    }
`,
    count: 1,
  },
  {
    from: `static void whisper_kv_cache_free(struct whisper_kv_cache & cache) {
    ggml_backend_buffer_free(cache.buffer);
}`,
    to: `static void whisper_kv_cache_free(struct whisper_kv_cache & cache) {
    ggml_backend_buffer_free(cache.buffer);
    cache.buffer = nullptr;
    if (cache.pw_pages != nullptr) {
        pw_free_pages(cache.pw_pages, cache.pw_pages_size);
        cache.pw_pages = nullptr;
    }
}`,
    count: 1,
  },
  {
    // Zeroed pages hold zeros or values of earlier windows, all finite:
    // masked cells read as nothing either way, as after a clear.
    from: `    cache.head = 0;

    ggml_backend_buffer_clear(cache.buffer, 0);
}`,
    to: `    cache.head = 0;

    if (cache.pw_pages == nullptr) {
        ggml_backend_buffer_clear(cache.buffer, 0);
    }
}`,
    count: 1,
  },
  {
    // A state of a context that shares encoders reserves no encoder buffers.
    from: '    // conv allocator\n    {\n',
    to: '    if (!ctx->pw_encoders) { // persistent-whisper: else from the pool\n    // conv allocator\n    {\n',
    count: 1,
  },
  {
    from: '    // decoder allocator\n',
    to: '    }\n\n    // decoder allocator\n',
    count: 1,
  },
  {
    from: 'static bool whisper_encode_internal(\n',
    to: `// persistent-whisper: a pool of encoder buffer sets, each a set of CPU
// (or GPU) backends of its own and the conv, encoder and cross schedulers
// that whisper_init_state would give every state.
struct pw_encoder_set {
    std::vector<ggml_backend_t> backends;
    whisper_sched conv;
    whisper_sched encode;
    whisper_sched cross;
    bool reserved = false;
};

static void pw_free_encoder_set(pw_encoder_set * set) {
    ggml_backend_sched_free(set->conv.sched);
    ggml_backend_sched_free(set->encode.sched);
    ggml_backend_sched_free(set->cross.sched);
    for (auto & backend : set->backends) {
        ggml_backend_free(backend);
    }
    delete set;
}

struct pw_encoder_pool {
    int max_sets;
    int made = 0;
    std::mutex mutex;
    std::condition_variable returned;
    std::vector<pw_encoder_set *> idle;

    explicit pw_encoder_pool(int n) : max_sets(n) {}

    ~pw_encoder_pool() {
        for (auto * set : idle) {
            pw_free_encoder_set(set);
        }
    }
};

extern "C" void whisper_pw_share_encoders(struct whisper_context * ctx, int max_sets) {
    ctx->pw_encoders = max_sets > 0 ? std::make_shared<pw_encoder_pool>(max_sets) : nullptr;
}

// Lends a state a set for one encode: waits for one (checking the abort
// callback) when all are in use, makes one while fewer than max_sets exist.
struct pw_encoder_lease {
    whisper_state & state;
    pw_encoder_pool * pool = nullptr;
    pw_encoder_set * set = nullptr;
    bool ok = true;

    pw_encoder_lease(whisper_context & ctx, whisper_state & wstate, ggml_abort_callback abort_callback, void * abort_data)
        : state(wstate), pool(ctx.pw_encoders.get()) {
        if (pool == nullptr) {
            return;
        }
        {
            std::unique_lock<std::mutex> lock(pool->mutex);
            while (pool->idle.empty() && pool->made >= pool->max_sets) {
                if (abort_callback && abort_callback(abort_data)) {
                    ok = false;
                    return;
                }
                pool->returned.wait_for(lock, std::chrono::milliseconds(5));
            }
            if (!pool->idle.empty()) {
                set = pool->idle.back();
                pool->idle.pop_back();
            } else {
                pool->made++;
                set = new pw_encoder_set;
            }
        }
        if (set->backends.empty()) {
            set->backends = whisper_backend_init(ctx.params);
        }
        std::swap(state.sched_conv, set->conv);
        std::swap(state.sched_encode, set->encode);
        std::swap(state.sched_cross, set->cross);
        if (!set->reserved) {
            // As whisper_init_state reserves them, for the full audio context.
            const int n_audio_ctx = state.exp_n_audio_ctx;
            state.exp_n_audio_ctx = 0;
            ok = !set->backends.empty() &&
                whisper_sched_graph_init(state.sched_conv, set->backends, [&]() { return whisper_build_graph_conv(ctx, state); }) &&
                whisper_sched_graph_init(state.sched_encode, set->backends, [&]() { return whisper_build_graph_encoder(ctx, state); }) &&
                whisper_sched_graph_init(state.sched_cross, set->backends, [&]() { return whisper_build_graph_cross(ctx, state); });
            state.exp_n_audio_ctx = n_audio_ctx;
            set->reserved = ok;
        }
    }

    ~pw_encoder_lease() {
        if (set == nullptr) {
            return;
        }
        std::swap(state.sched_conv, set->conv);
        std::swap(state.sched_encode, set->encode);
        std::swap(state.sched_cross, set->cross);
        std::lock_guard<std::mutex> lock(pool->mutex);
        if (set->reserved) {
            pool->idle.push_back(set);
        } else {
            pw_free_encoder_set(set);
            pool->made--;
        }
        pool->returned.notify_one();
    }
};

static bool whisper_encode_internal(
`,
    count: 1,
  },
  {
    from: `                   void * abort_callback_data) {
    const int64_t t_start_us = ggml_time_us();

    // conv
`,
    to: `                   void * abort_callback_data) {
    const int64_t t_start_us = ggml_time_us();

    pw_encoder_lease pw_lease(wctx, wstate, abort_callback, abort_callback_data);
    if (!pw_lease.ok) {
        return false;
    }

    // conv
`,
    count: 1,
  },
  {
    from: 'whisper_encode_internal(*ctx, *state, seek, params.n_threads,',
    to: 'whisper_encode_internal(*ctx, *state, seek, pw_threads(params.n_threads),',
    count: 1,
  },
  {
    from: 'whisper_decode_internal(*ctx, *state, state->batch, params.n_threads, false,',
    to: 'whisper_decode_internal(*ctx, *state, state->batch, pw_threads(params.n_threads), false,',
    count: 2,
  },
  {
    from: 'std::min(params.n_threads, n_decoders_cur)',
    to: 'std::min(pw_threads(params.n_threads), n_decoders_cur)',
    count: 2,
  },
  {
    // The encoder's three graphs and the decoder's.
    from: 'if (!ggml_graph_compute_helper(sched, gf, n_threads)) {',
    to: 'if (!ggml_graph_compute_helper(sched, gf, n_threads, true, abort_callback, abort_callback_data)) {',
    count: 4,
  },
]

/** Whether the source tree at `src` carries an older version of the changes (then unpack it again). */
export function patchedBefore(src) {
  const text = readFileSync(join(src, 'src', 'whisper.cpp'), 'utf8')
  return text.includes(ANY_MARK) && !text.includes(VERSION_MARK)
}

/** Applies the changes to the source tree at `src` once; fails if 1.9.1's text is not there. */
export function patchWhisper(src) {
  const file = join(src, 'src', 'whisper.cpp')
  let text = readFileSync(file, 'utf8')
  if (text.includes(VERSION_MARK)) return
  for (const { from, to, count } of EDITS) {
    const found = text.split(from).length - 1
    if (found !== count) throw new Error(`${file}: expected ${count} of ${JSON.stringify(from.slice(0, 60))}, found ${found}`)
    text = text.replaceAll(from, to)
  }
  writeFileSync(file, text)
}

export const PATCH_FILE = new URL(import.meta.url)
