// A small C API over whisper.cpp 1.9.1 for the worker program: load a model
// once, decode audio the way whisper-cli does (its read_audio_data), and run
// one transcription on a fresh whisper state with whisper-cli's settings,
// reporting progress and new segments and stopping when asked.

#include "whisper.h"
#include "common-whisper.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {

struct pw_model {
    whisper_context * ctx;
};

struct pw_params {
    const char * language;
    int32_t threads;
    int32_t beam_size;
    int32_t best_of;
    float temperature;
    float temperature_inc;
    float entropy_thold;
    float logprob_thold;
    float no_speech_thold;
    float word_thold;
    int32_t max_context;
    int32_t max_len;
    int32_t audio_ctx;
    bool split_on_word;
    bool translate;
    bool no_timestamps;
    bool suppress_nst;
    const char * prompt;
    bool carry_initial_prompt;
    int32_t offset_ms;
    int32_t duration_ms;
    // The decode's current thread count, which the engine may change while
    // it runs.
    const int32_t * threads_now;
};

// From this project's change to whisper.cpp (scripts/whisper-patch.mjs):
// whisper reads the thread count of the decode running on the calling
// thread from here before each step.
void whisper_pw_set_thread_count(const int32_t * count);
// KV caches on fresh zeroed pages (CPU), and at most `max_sets` encoders at
// once on a shared pool of compute buffers.
void whisper_pw_set_lazy_kv(bool on);
void whisper_pw_share_encoders(whisper_context * ctx, int max_sets);

typedef void (*pw_progress_fn)(void * user, int32_t percent);
typedef void (*pw_segment_fn)(void * user, int64_t t0_ms, int64_t t1_ms, const char * text);
typedef bool (*pw_abort_fn)(void * user);

struct pw_segment {
    int64_t t0_ms;
    int64_t t1_ms;
    std::string text;
};

struct pw_result {
    std::vector<pw_segment> segments;
    std::string language;
};

// whisper's and ggml's log lines: kept quiet unless asked for.
static void quiet_log(enum ggml_log_level level, const char * text, void * user) {
    (void) level;
    if (user != nullptr) {
        fputs(text, stderr);
    }
}

void pw_log_to_stderr(bool on) {
    whisper_log_set(quiet_log, on ? (void *) 1 : nullptr);
}

pw_model * pw_model_load(const char * path, bool use_gpu, bool flash_attn, int32_t encoders) {
    whisper_pw_set_lazy_kv(true);
    whisper_context_params cparams = whisper_context_default_params();
    cparams.use_gpu = use_gpu;
    cparams.flash_attn = flash_attn;
    // No default state: every transcription makes its own.
    whisper_context * ctx = whisper_init_from_file_with_params_no_state(path, cparams);
    if (ctx == nullptr) {
        return nullptr;
    }
    whisper_pw_share_encoders(ctx, encoders);
    return new pw_model{ctx};
}

void pw_model_free(pw_model * model) {
    if (model != nullptr) {
        whisper_free(model->ctx);
        delete model;
    }
}

bool pw_model_multilingual(const pw_model * model) {
    return whisper_is_multilingual(model->ctx) != 0;
}

// Audio as whisper-cli reads it (miniaudio, stb_vorbis): 16 kHz mono f32.
static int take_samples(std::vector<float> & pcm, float ** out, size_t * n) {
    *n = pcm.size();
    *out = (float *) malloc(pcm.size() * sizeof(float) + 1);
    if (*out == nullptr) {
        return 1;
    }
    memcpy(*out, pcm.data(), pcm.size() * sizeof(float));
    return 0;
}

int pw_audio_from_file(const char * path, float ** out, size_t * n) {
    std::vector<float> pcm;
    std::vector<std::vector<float>> stereo;
    if (!read_audio_data(std::string(path), pcm, stereo, false)) {
        return 1;
    }
    return take_samples(pcm, out, n);
}

int pw_audio_from_memory(const char * bytes, size_t len, float ** out, size_t * n) {
    std::vector<float> pcm;
    std::vector<std::vector<float>> stereo;
    if (!read_audio_data(bytes, len, pcm, stereo, false)) {
        return 1;
    }
    return take_samples(pcm, out, n);
}

void pw_free(void * p) {
    free(p);
}

struct callbacks {
    void * user;
    pw_progress_fn progress;
    pw_segment_fn segment;
    pw_abort_fn abort;
};

static void on_segments(whisper_context * ctx, whisper_state * state, int n_new, void * data) {
    (void) ctx;
    auto * cb = (callbacks *) data;
    const int n = whisper_full_n_segments_from_state(state);
    for (int i = n - n_new; i < n; i++) {
        cb->segment(cb->user,
                    whisper_full_get_segment_t0_from_state(state, i) * 10,
                    whisper_full_get_segment_t1_from_state(state, i) * 10,
                    whisper_full_get_segment_text_from_state(state, i));
    }
}

static void on_progress(whisper_context * ctx, whisper_state * state, int progress, void * data) {
    (void) ctx;
    (void) state;
    auto * cb = (callbacks *) data;
    cb->progress(cb->user, progress);
}

static bool on_abort(void * data) {
    auto * cb = (callbacks *) data;
    return cb->abort(cb->user);
}

static bool on_encoder_begin(whisper_context * ctx, whisper_state * state, void * data) {
    (void) ctx;
    (void) state;
    return !on_abort(data);
}

// 0: done (*out holds the result), 1: aborted, 2: failed.
int pw_transcribe(pw_model * model, const float * samples, size_t n, const pw_params * p, void * user,
                  pw_progress_fn progress, pw_segment_fn segment, pw_abort_fn abort, pw_result ** out) {
    whisper_context * ctx = model->ctx;
    // As whisper-cli: an English-only model transcribes English, untranslated.
    std::string language = p->language;
    bool translate = p->translate;
    if (!whisper_is_multilingual(ctx) && (language != "en" || translate)) {
        language = "en";
        translate = false;
    }

    // whisper-cli's parameters (cli.cpp, 1.9.1), field by field.
    whisper_full_params w = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
    w.strategy = p->beam_size > 1 ? WHISPER_SAMPLING_BEAM_SEARCH : WHISPER_SAMPLING_GREEDY;
    w.print_realtime = false;
    w.print_progress = false;
    w.print_timestamps = false;
    w.print_special = false;
    w.translate = translate;
    w.language = language.c_str();
    w.detect_language = false;
    w.n_threads = p->threads;
    w.n_max_text_ctx = p->max_context >= 0 ? p->max_context : w.n_max_text_ctx;
    w.offset_ms = p->offset_ms;
    w.duration_ms = p->duration_ms;
    w.token_timestamps = p->max_len > 0;
    w.thold_pt = p->word_thold;
    w.max_len = p->max_len;
    w.split_on_word = p->split_on_word;
    w.audio_ctx = p->audio_ctx;
    w.initial_prompt = p->prompt;
    w.carry_initial_prompt = p->carry_initial_prompt;
    w.greedy.best_of = p->best_of;
    w.beam_search.beam_size = p->beam_size;
    w.temperature_inc = p->temperature_inc;
    w.temperature = p->temperature;
    w.entropy_thold = p->entropy_thold;
    w.logprob_thold = p->logprob_thold;
    w.no_speech_thold = p->no_speech_thold;
    w.no_timestamps = p->no_timestamps;
    w.suppress_nst = p->suppress_nst;

    callbacks cb{user, progress, segment, abort};
    if (segment != nullptr) {
        w.new_segment_callback = on_segments;
        w.new_segment_callback_user_data = &cb;
    }
    if (progress != nullptr) {
        w.progress_callback = on_progress;
        w.progress_callback_user_data = &cb;
    }
    w.encoder_begin_callback = on_encoder_begin;
    w.encoder_begin_callback_user_data = &cb;
    w.abort_callback = on_abort;
    w.abort_callback_user_data = &cb;

    // A fresh state: no result depends on an earlier request.
    whisper_state * state = whisper_init_state(ctx);
    if (state == nullptr) {
        return 2;
    }
    whisper_pw_set_thread_count(p->threads_now);
    const int rc = whisper_full_with_state(ctx, state, w, samples, (int) n);
    whisper_pw_set_thread_count(nullptr);
    if (abort(user)) {
        whisper_free_state(state);
        return 1;
    }
    if (rc != 0) {
        whisper_free_state(state);
        return 2;
    }
    auto * result = new pw_result;
    const int count = whisper_full_n_segments_from_state(state);
    for (int i = 0; i < count; i++) {
        result->segments.push_back({
            whisper_full_get_segment_t0_from_state(state, i) * 10,
            whisper_full_get_segment_t1_from_state(state, i) * 10,
            whisper_full_get_segment_text_from_state(state, i),
        });
    }
    result->language = whisper_lang_str(whisper_full_lang_id_from_state(state));
    whisper_free_state(state);
    *out = result;
    return 0;
}

int32_t pw_result_count(const pw_result * r) {
    return (int32_t) r->segments.size();
}

int64_t pw_result_t0(const pw_result * r, int32_t i) {
    return r->segments[i].t0_ms;
}

int64_t pw_result_t1(const pw_result * r, int32_t i) {
    return r->segments[i].t1_ms;
}

const char * pw_result_text(const pw_result * r, int32_t i) {
    return r->segments[i].text.c_str();
}

const char * pw_result_language(const pw_result * r) {
    return r->language.c_str();
}

void pw_result_free(pw_result * r) {
    delete r;
}

}  // extern "C"
