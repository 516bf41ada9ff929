// Reads through a file mapping past the file's end fault with SIGBUS. Another program may
// shorten a segment file a DugongStore reader has mapped (a copy written over the store in
// place, `truncate`), and nothing can check the size and then read without a window between
// the two. So the store's mappings are registered here with their file's descriptor, and a
// SIGBUS at an address inside one of them, on a page that lies wholly past the file's current
// end (fstat), maps a page of zeros over the faulting page and returns: the read goes on, finds
// zeros where the frame's bytes were, and fails the frame's checksum (a typed error, not a
// crash). The slot is marked patched, so that the engine opens the file again (new maps) rather
// than keep reading the zeros once the file is whole again.
//
// A fault on a page the file has is tried again a few times (the file may have grown back
// between the fault and the fstat: a copy written over it in place). One that stays is the
// disk's error (an I/O error; a hole that a full tmpfs cannot fill): that page gets zeros too,
// but the slot is marked unreadable first, and the engine checks that mark wherever zeros would
// mean something (the end of the log, a torn tail, bytes to write again) and fails with an I/O
// error instead. Any other SIGBUS (a fault outside the store's maps, a signal sent by kill)
// goes to the handler installed before (the Swift runtime's backtracer, or the default action).
//
// The handler uses only atomics and plain system calls (fstat is async-signal-safe; mmap is
// not listed by POSIX but is a bare system call in glibc), and saves errno.

#define _GNU_SOURCE
#include "dugong_shims.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// A slot is claimed with a compare-and-swap on `used` (0 → 1), and its fields are written
// between two increments of `sequence` (odd while they change), as in a seqlock: the handler
// takes a slot's fields only when it read the same even sequence before and after them.
#define DUGONG_MAPPING_SLOTS 65536
struct mapping_slot {
    _Atomic unsigned long sequence;
    _Atomic int used;
    _Atomic uintptr_t start;
    _Atomic uintptr_t end;
    _Atomic int descriptor;
    _Atomic int patched;
    _Atomic int unreadable;
};
static struct mapping_slot slots[DUGONG_MAPPING_SLOTS];
static _Atomic long high_water;      // slots below this may be in use
static _Atomic long next_free_hint;  // where registration starts looking
static _Atomic long zero_pages;      // pages of zeros mapped by the handler past a file's end
static _Atomic long unreadable_pages;  // pages of zeros mapped in place of pages the disk failed
static struct sigaction previous_action;
// The address whose fault this thread last let run again, and how often in a row (initial-exec
// thread-local storage: the shims are linked into the program, so reading it in a signal
// handler allocates nothing).
static __thread __attribute__((tls_model("initial-exec"))) uintptr_t retried_address;
static __thread __attribute__((tls_model("initial-exec"))) int retries;
static __thread __attribute__((tls_model("initial-exec"))) long long retried_at;
// The address whose page this thread last covered with zeros, in which registration of its slot
// (a map made anew may lie at the same address), and when: a fault there again at once, in the
// same map, means the zeros did not clear it (an address outside the page that faulted), and it
// goes on rather than loop.
static __thread __attribute__((tls_model("initial-exec"))) uintptr_t zeroed_address;
static __thread __attribute__((tls_model("initial-exec"))) unsigned long zeroed_registration;
static __thread __attribute__((tls_model("initial-exec"))) long long zeroed_at;
static __thread __attribute__((tls_model("initial-exec"))) unsigned long retried_registration;
// Faults further apart than this are not one read tried again.
#define DUGONG_FAULT_WINDOW_NS 100000000LL
static long page_size;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

// The slot whose mapping holds `address`, with its fields as one registration wrote them (and
// that registration's sequence number); -1 when none does.
static long slot_holding(uintptr_t address, uintptr_t *start, int *descriptor, unsigned long *registration) {
    long high = atomic_load(&high_water);
    for (long index = 0; index < high; index++) {
        struct mapping_slot *slot = &slots[index];
        unsigned long before = atomic_load(&slot->sequence);
        if (before & 1) continue;
        uintptr_t first = atomic_load(&slot->start), last = atomic_load(&slot->end);
        int file = atomic_load(&slot->descriptor);
        if (atomic_load(&slot->sequence) != before) continue;
        if (first != 0 && address >= first && address < last) {
            *start = first;
            *descriptor = file;
            *registration = (unsigned long)index << 40 | (before & ((1UL << 40) - 1));  // slot and sequence
            return index;
        }
    }
    return -1;
}

static void pass_on(int signal_number, siginfo_t *info, void *context) {
    if (previous_action.sa_flags & SA_SIGINFO) {
        previous_action.sa_sigaction(signal_number, info, context);
    } else if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN) {
        previous_action.sa_handler(signal_number);
    } else if (previous_action.sa_handler == SIG_IGN && info->si_code <= 0) {
        return;  // sent by another process, and ignored before this handler
    } else {
        // The default action, restored: a fault runs the faulting read again, which ends the
        // process; a signal sent by another process is raised again.
        signal(SIGBUS, SIG_DFL);
        if (info->si_code <= 0) raise(SIGBUS);
    }
}

static long long monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

// Maps a page of zeros at `page` (read-only, private) for the fault at `address`: the faulting
// read then runs again on zeros. Returns whether it could.
static int map_zeros(uintptr_t page, uintptr_t address, unsigned long registration) {
    if (mmap((void *)page, (size_t)page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) return 0;
    zeroed_address = address;
    zeroed_registration = registration;
    zeroed_at = monotonic_ns();
    return 1;
}

static void on_bus_error(int signal_number, siginfo_t *info, void *context) {
    int saved_errno = errno;
    uintptr_t address = (uintptr_t)info->si_addr;
    uintptr_t start = 0;
    int descriptor = -1;
    unsigned long registration = 0;
    long index = info->si_code == BUS_ADRERR ? slot_holding(address, &start, &descriptor, &registration) : -1;
    long long now = index >= 0 ? monotonic_ns() : 0;
    if (index >= 0 && address == zeroed_address && registration == zeroed_registration && now - zeroed_at < DUGONG_FAULT_WINDOW_NS) {
        index = -1;  // the zeros this thread put there, in this map, did not clear the fault
    }
    if (index >= 0) {
        uintptr_t page = address & ~(uintptr_t)(page_size - 1);
        struct stat status;
        if (fstat(descriptor, &status) == 0) {
            // A page wholly past the file's end (the map starts at offset 0): zeros.
            if ((off_t)(page - start) >= status.st_size) {
                // Marked before any thread can read the zeros (a mark without them only makes
                // the engine map the file anew).
                atomic_store(&slots[index].patched, 1);
                atomic_fetch_add(&zero_pages, 1);
                if (map_zeros(page, address, registration)) {
                    retried_address = 0;
                    errno = saved_errno;
                    return;  // the faulting read runs again, on zeros
                }
            }
            // A page the file has (again: it grew back between the fault and the fstat, as a
            // copy written over it does): the read is tried again, a few times.
            if ((off_t)(page - start) < status.st_size) {
                int again = retried_address == address && retried_registration == registration && now - retried_at < DUGONG_FAULT_WINDOW_NS;
                retries = again ? retries + 1 : 1;
                retried_address = address;
                retried_registration = registration;
                retried_at = now;
                if (retries <= 3) {
                    errno = saved_errno;
                    return;
                }
                retried_address = 0;
                // A fault that stays is the disk's: zeros, marked unreadable before any thread
                // can read them, so that the engine reports an I/O error instead of taking them
                // for what the file holds.
                atomic_store(&slots[index].unreadable, 1);
                atomic_fetch_add(&unreadable_pages, 1);
                if (map_zeros(page, address, registration)) {
                    errno = saved_errno;
                    return;
                }
            }
        }
    }
    errno = saved_errno;
    pass_on(signal_number, info, context);
}

static void install(void) {
    page_size = sysconf(_SC_PAGESIZE);
    // The action in place first: a SIGBUS between the installation and the write-back of the old
    // action would otherwise be passed on to nothing.
    sigaction(SIGBUS, NULL, &previous_action);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_bus_error;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, NULL);
}

long dugong_mapping_register(const void *start, size_t length, int descriptor) {
    pthread_once(&install_once, install);
    long hint = atomic_load(&next_free_hint);
    for (long step = 0; step < DUGONG_MAPPING_SLOTS; step++) {
        long index = (hint + step) % DUGONG_MAPPING_SLOTS;
        struct mapping_slot *slot = &slots[index];
        int free_slot = 0;
        if (atomic_load(&slot->used) != 0 || !atomic_compare_exchange_strong(&slot->used, &free_slot, 1)) continue;
        long high = atomic_load(&high_water);
        while (high < index + 1 && !atomic_compare_exchange_weak(&high_water, &high, index + 1)) {}
        atomic_fetch_add(&slot->sequence, 1);
        atomic_store(&slot->descriptor, descriptor);
        atomic_store(&slot->end, (uintptr_t)start + length);
        atomic_store(&slot->patched, 0);
        atomic_store(&slot->unreadable, 0);
        atomic_store(&slot->start, (uintptr_t)start);
        atomic_fetch_add(&slot->sequence, 1);
        atomic_store(&next_free_hint, (index + 1) % DUGONG_MAPPING_SLOTS);
        return index;
    }
    return -1;
}

void dugong_mapping_unregister(long index) {
    if (index < 0 || index >= DUGONG_MAPPING_SLOTS) return;
    struct mapping_slot *slot = &slots[index];
    atomic_fetch_add(&slot->sequence, 1);
    atomic_store(&slot->start, 0);
    atomic_store(&slot->end, 0);
    atomic_store(&slot->descriptor, -1);
    atomic_fetch_add(&slot->sequence, 1);
    atomic_store(&slot->used, 0);
}

int dugong_mapping_was_patched(long index) {
    if (index < 0 || index >= DUGONG_MAPPING_SLOTS) return 0;
    return atomic_load(&slots[index].patched);
}

long dugong_mapping_zero_pages(void) { return atomic_load(&zero_pages); }

int dugong_mapping_was_unreadable(long index) {
    if (index < 0 || index >= DUGONG_MAPPING_SLOTS) return 0;
    return atomic_load(&slots[index].unreadable);
}

long dugong_mapping_unreadable_pages(void) { return atomic_load(&unreadable_pages); }

int dugong_mapping_fail_page(long index, const void *page) {
    if (index < 0 || index >= DUGONG_MAPPING_SLOTS) return 0;
    pthread_once(&install_once, install);  // page_size
    struct mapping_slot *slot = &slots[index];
    uintptr_t address = (uintptr_t)page;
    if (address % (uintptr_t)page_size != 0 || address < atomic_load(&slot->start) || address >= atomic_load(&slot->end)) return 0;
    // As the handler does for a fault that stays: the mark first, then the zeros.
    atomic_store(&slot->unreadable, 1);
    atomic_fetch_add(&unreadable_pages, 1);
    return mmap((void *)address, (size_t)page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED;
}
