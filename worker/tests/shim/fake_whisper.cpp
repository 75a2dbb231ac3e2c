// A FAKE whisper.cpp, for the shim's contract tests only: it transcribes
// nothing. Its whisper_full_with_state does what the test asks (a
// FAKE_MODE environment variable): free the state itself and return -7,
// as whisper.cpp does when it cannot allocate the KV cache for more
// decoders; throw std::bad_alloc; throw something else; or succeed with one
// segment. Freeing a state twice aborts the process, so the test sees it.

#include "whisper.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

struct whisper_context {
    int multilingual;
};

struct whisper_state {
    bool alive;
};

int fake_states_freed = 0;

static std::string mode() {
    const char * m = getenv("FAKE_MODE");
    return m ? m : "ok";
}

extern "C" {

void whisper_log_set(ggml_log_callback, void *) {}

struct whisper_context_params whisper_context_default_params(void) {
    whisper_context_params p;
    memset(&p, 0, sizeof p);
    return p;
}

struct whisper_context * whisper_init_from_file_with_params_no_state(const char *, struct whisper_context_params) {
    return new whisper_context{0};
}

void whisper_free(struct whisper_context * ctx) {
    delete ctx;
}

struct whisper_full_params whisper_full_default_params(enum whisper_sampling_strategy) {
    whisper_full_params p;
    memset(&p, 0, sizeof p);
    return p;
}

int whisper_is_multilingual(struct whisper_context * ctx) {
    return ctx->multilingual;
}

struct whisper_state * whisper_init_state(struct whisper_context *) {
    return new whisper_state{true};
}

void whisper_free_state(struct whisper_state * state) {
    if (state == nullptr) {
        return;
    }
    if (!state->alive) {
        fprintf(stderr, "FAKE whisper: a state was freed twice\n");
        abort();
    }
    // Kept allocated, so that a second free is seen rather than undefined.
    state->alive = false;
    fake_states_freed++;
}

int whisper_full_with_state(struct whisper_context * ctx, struct whisper_state * state, struct whisper_full_params params,
                            const float *, int) {
    const std::string m = mode();
    if (m == "free-and-7") {
        whisper_free_state(state);
        return -7;
    }
    if (m == "bad-alloc") {
        throw std::bad_alloc();
    }
    if (m == "throw") {
        throw 42;
    }
    if (params.new_segment_callback) {
        params.new_segment_callback(ctx, state, 1, params.new_segment_callback_user_data);
    }
    return 0;
}

int whisper_full_n_segments_from_state(struct whisper_state *) {
    return 1;
}

int64_t whisper_full_get_segment_t0_from_state(struct whisper_state *, int) {
    return 0;
}

int64_t whisper_full_get_segment_t1_from_state(struct whisper_state *, int) {
    return 100;
}

const char * whisper_full_get_segment_text_from_state(struct whisper_state *, int) {
    return " fake";
}

int whisper_full_lang_id_from_state(struct whisper_state *) {
    return 0;
}

const char * whisper_lang_str(int) {
    return "en";
}

// The VAD functions the shim links to; these tests never open a detector.
struct whisper_vad_context_params whisper_vad_default_context_params(void) {
    return {};
}

struct whisper_vad_context * whisper_vad_init_from_file_with_params(const char *, struct whisper_vad_context_params) {
    return nullptr;
}

void whisper_vad_reset_state(struct whisper_vad_context *) {}

bool whisper_vad_detect_speech_no_reset(struct whisper_vad_context *, const float *, int) {
    return false;
}

int whisper_vad_n_probs(struct whisper_vad_context *) {
    return 0;
}

float * whisper_vad_probs(struct whisper_vad_context *) {
    return nullptr;
}

void whisper_vad_free(struct whisper_vad_context *) {}

#ifdef WHISPER_HAS_LIVE_N_THREADS
void whisper_set_live_n_threads(const int32_t *) {}
#endif
#ifdef WHISPER_HAS_KV_CACHE_ZEROED_PAGES
void whisper_set_kv_cache_zeroed_pages(bool) {}
#endif
#ifdef WHISPER_HAS_SHARED_ENCODER_BUFFERS
void whisper_ctx_share_encoder_buffers(struct whisper_context *, int) {}
#endif

}  // extern "C"
