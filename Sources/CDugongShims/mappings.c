// Reads through a file mapping past the file's end fault with SIGBUS. Another program may
// shorten a segment file a DugongStore reader has mapped (a copy written over the store in
// place, `truncate`), and nothing can check the size and then read without a window between
// the two. So the store's mappings are registered here, and a SIGBUS at an address inside one
// of them maps a page of zeros over the faulting page and returns: the read goes on, finds
// zeros where the frame's bytes were, and fails the frame's checksum (a typed error, not a
// crash). Any other SIGBUS goes to the handler that was installed before (the Swift runtime's
// backtracer, or the default action). The handler uses only atomics and async-signal-safe
// system calls (mmap).

#define _GNU_SOURCE
#include "dugong_shims.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// Slots of registered mappings: a slot is free when its start is 0. Registration claims a
// free slot with a compare-and-swap on its end (0 → end) and then publishes the start.
#define DUGONG_MAPPING_SLOTS 65536
static _Atomic uintptr_t mapping_start[DUGONG_MAPPING_SLOTS];
static _Atomic uintptr_t mapping_end[DUGONG_MAPPING_SLOTS];
static _Atomic long mappings_high_water;  // slots below this may be in use
static _Atomic long zero_pages;           // pages of zeros mapped by the handler
static struct sigaction previous_action;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static int is_registered(uintptr_t address) {
    long high = atomic_load(&mappings_high_water);
    for (long slot = 0; slot < high; slot++) {
        uintptr_t start = atomic_load(&mapping_start[slot]);
        if (start != 0 && address >= start && address < atomic_load(&mapping_end[slot])) return 1;
    }
    return 0;
}

static void on_bus_error(int signal_number, siginfo_t *info, void *context) {
    uintptr_t address = (uintptr_t)info->si_addr;
    if (info->si_code == BUS_ADRERR && is_registered(address)) {
        long page = sysconf(_SC_PAGESIZE);
        void *first = (void *)(address & ~(uintptr_t)(page - 1));
        if (mmap(first, (size_t)page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
            atomic_fetch_add(&zero_pages, 1);
            return;  // the faulting read runs again, on zeros
        }
    }
    if (previous_action.sa_flags & SA_SIGINFO) {
        previous_action.sa_sigaction(signal_number, info, context);
    } else if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN) {
        previous_action.sa_handler(signal_number);
    } else {
        // The default action: restored, and the faulting read runs again and ends the process.
        signal(SIGBUS, SIG_DFL);
    }
}

static void install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_bus_error;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, &previous_action);
}

long dugong_mapping_register(const void *start, size_t length) {
    pthread_once(&install_once, install);
    uintptr_t end = (uintptr_t)start + length;
    for (long slot = 0; slot < DUGONG_MAPPING_SLOTS; slot++) {
        uintptr_t expected = 0;
        if (atomic_compare_exchange_strong(&mapping_end[slot], &expected, end)) {
            atomic_store(&mapping_start[slot], (uintptr_t)start);
            long high = atomic_load(&mappings_high_water);
            while (high < slot + 1 && !atomic_compare_exchange_weak(&mappings_high_water, &high, slot + 1)) {}
            return slot;
        }
    }
    return -1;
}

void dugong_mapping_unregister(long slot) {
    if (slot < 0 || slot >= DUGONG_MAPPING_SLOTS) return;
    atomic_store(&mapping_start[slot], 0);
    atomic_store(&mapping_end[slot], 0);
}

long dugong_mapping_zero_pages(void) { return atomic_load(&zero_pages); }
