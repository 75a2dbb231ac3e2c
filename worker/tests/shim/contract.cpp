// Drives shim.cpp against the FAKE whisper.cpp (fake_whisper.cpp): one
// transcription in the mode FAKE_MODE names. Prints "rc=N freed=M".

#include "pw_decoding.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

struct pw_model;

extern "C" {
int pw_model_load(const char * path, bool use_gpu, bool flash_attn, int32_t encoders, pw_model ** out);
void pw_model_free(pw_model * model);
int pw_transcribe(pw_model * model, const float * samples, int32_t n, const char * language, int32_t threads,
                  const int32_t * live_threads, const pw_decoding * d, void * user, void (*progress)(void *, int32_t),
                  void (*segment)(void *, int64_t, int64_t, const char *), bool (*abort)(void *),
                  int32_t * language_id);
}

extern int fake_states_freed;

static void on_segment(void *, int64_t, int64_t, const char *) {}
static bool never(void *) {
    return false;
}

int main() {
    pw_model * model = nullptr;
    if (pw_model_load("fake.bin", false, false, 1, &model) != 0) {
        return 2;
    }
    pw_decoding d;
    memset(&d, 0, sizeof d);
    d.beam_size = 5;
    d.best_of = 5;
    d.prompt = "";
    d.suppress_regex = "";
    d.vad_model = "";
    float samples[16000] = {0};
    int32_t threads = 1;
    int32_t language = -1;
    const int rc = pw_transcribe(model, samples, 16000, "en", 1, &threads, &d, nullptr, nullptr, on_segment, never,
                                 &language);
    printf("rc=%d freed=%d\n", rc, fake_states_freed);
    pw_model_free(model);
    return 0;
}
