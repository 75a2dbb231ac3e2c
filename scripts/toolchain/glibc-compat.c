/*
 * Linked into the Linux programs that carry a static libstdc++ from GCC 12
 * but run on glibc 2.17: that libstdc++ was compiled against a newer glibc
 * and refers to four symbols glibc 2.17 lacks. Each stand-in keeps
 * libstdc++'s behaviour.
 */
#include <pthread.h>
#include <stdlib.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/syscall.h>

#ifndef SYS_getrandom
#if defined(__x86_64__)
#define SYS_getrandom 318
#elif defined(__aarch64__)
#define SYS_getrandom 278
#endif
#endif

/* glibc >= 2.32 sets this while a process has one thread, so that libstdc++
 * may skip atomic operations. 0 ("maybe several threads") is always safe. */
char __libc_single_threaded = 0;

/* glibc >= 2.25; std::random_device's default source. The kernel's
 * getrandom (Linux >= 3.17) is what glibc's own implementation calls. */
int getentropy(void *buffer, size_t length) {
    if (length > 256) {
        errno = EIO;
        return -1;
    }
    char *out = buffer;
    while (length > 0) {
        long n = syscall(SYS_getrandom, out, length, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        out += n;
        length -= (size_t)n;
    }
    return 0;
}

/* glibc >= 2.36; another std::random_device source. */
uint32_t arc4random(void) {
    uint32_t value = 0;
    (void)getentropy(&value, sizeof value);
    return value;
}

/* glibc >= 2.18; runs the destructors of thread_local objects when their
 * thread exits (newest first), and the main thread's at exit. This is
 * libstdc++'s own fallback for C libraries without it. */
struct thread_dtor {
    void (*destructor)(void *);
    void *object;
    struct thread_dtor *next;
};

static pthread_key_t thread_dtors;
static pthread_once_t thread_dtors_once = PTHREAD_ONCE_INIT;

static void run_thread_dtors(void *list) {
    for (struct thread_dtor *e = list; e != NULL;) {
        struct thread_dtor *next = e->next;
        e->destructor(e->object);
        free(e);
        e = next;
    }
}

static void run_main_thread_dtors(void) {
    void *list = pthread_getspecific(thread_dtors);
    pthread_setspecific(thread_dtors, NULL);
    run_thread_dtors(list);
}

static void init_thread_dtors(void) {
    pthread_key_create(&thread_dtors, run_thread_dtors);
    atexit(run_main_thread_dtors);
}

int __cxa_thread_atexit_impl(void (*destructor)(void *), void *object, void *dso) {
    (void)dso;
    pthread_once(&thread_dtors_once, init_thread_dtors);
    struct thread_dtor *e = malloc(sizeof *e);
    if (e == NULL) return -1;
    e->destructor = destructor;
    e->object = object;
    e->next = pthread_getspecific(thread_dtors);
    pthread_setspecific(thread_dtors, e);
    return 0;
}
