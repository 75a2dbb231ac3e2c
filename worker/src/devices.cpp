// The devices ggml sees, for the worker program: which GPUs whisper can use
// (in the order whisper counts them for `gpu_device`), the CPU, and what a
// decode state costs on the device a model was loaded on. Compiled beside
// shim.cpp; like it, nothing here lets a C++ exception reach Rust.

#include "whisper.h"
#include "ggml-backend.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

extern "C" {

// One device, as ggml describes it.
struct pw_device_info {
    char backend[32];   // ggml's backend: "Vulkan", "Metal", "CUDA", "CPU" ...
    char name[256];     // the device's description (the GPU's or CPU's name)
    uint64_t memory_free;
    uint64_t memory_total;
};

static void copy_text(char * to, size_t cap, const char * from) {
    snprintf(to, cap, "%s", from != nullptr ? from : "");
}

static void describe(ggml_backend_dev_t dev, pw_device_info * out) {
    copy_text(out->backend, sizeof out->backend, ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev)));
    copy_text(out->name, sizeof out->name, ggml_backend_dev_description(dev));
    size_t free = 0;
    size_t total = 0;
    ggml_backend_dev_memory(dev, &free, &total);
    out->memory_free = free;
    out->memory_total = total;
}

// whisper_backend_init_gpu's choice: the `gpu`th device of type GPU or IGPU.
static ggml_backend_dev_t nth_gpu(int32_t gpu) {
    int32_t seen = 0;
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        const enum ggml_backend_dev_type type = ggml_backend_dev_type(dev);
        if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU) {
            if (seen == gpu) {
                return dev;
            }
            seen++;
        }
    }
    return nullptr;
}

// How many GPUs whisper can use (-1 if asking ggml failed).
int32_t pw_gpu_count(void) {
    try {
        int32_t n = 0;
        while (nth_gpu(n) != nullptr) {
            n++;
        }
        return n;
    } catch (...) {
        return -1;
    }
}

// The `gpu`th GPU; 0 on success.
int32_t pw_gpu_info(int32_t gpu, pw_device_info * out) {
    try {
        ggml_backend_dev_t dev = nth_gpu(gpu);
        if (dev == nullptr) {
            return 2;
        }
        describe(dev, out);
        return 0;
    } catch (...) {
        return 2;
    }
}

// The CPU; 0 on success.
int32_t pw_cpu_info(pw_device_info * out) {
    try {
        ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
        if (dev == nullptr) {
            return 2;
        }
        describe(dev, out);
        return 0;
    } catch (...) {
        return 2;
    }
}

static void keep_log(enum ggml_log_level level, const char * text, void * user) {
    (void) level;
    static_cast<std::string *>(user)->append(text);
}

// Reserves one decode state on `ctx` (with its own encoder buffers, to see
// their size too), frees it, and copies what whisper logged meanwhile into
// `log`. Where this build shares encoder buffers, the context shares
// `encoders` sets afterwards. The caller sets its own log callback again
// afterwards. 0 on success.
int32_t pw_state_probe(whisper_context * ctx, int32_t encoders, char * log, size_t cap) {
    std::string kept;
    int32_t rc = 2;
    try {
        whisper_log_set(keep_log, &kept);
#ifdef WHISPER_HAS_SHARED_ENCODER_BUFFERS
        whisper_ctx_share_encoder_buffers(ctx, 0);
#endif
        whisper_state * state = whisper_init_state(ctx);
        if (state != nullptr) {
            whisper_free_state(state);
            rc = 0;
        }
#ifdef WHISPER_HAS_SHARED_ENCODER_BUFFERS
        whisper_ctx_share_encoder_buffers(ctx, encoders);
#else
        (void) encoders;
#endif
    } catch (...) {
        rc = 2;
    }
    whisper_log_set(nullptr, nullptr);
    copy_text(log, cap, kept.c_str());
    return rc;
}

}  // extern "C"
