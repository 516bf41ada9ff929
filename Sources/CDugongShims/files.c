// GNU-only file system calls the engine needs and Swift's Glibc module does not import.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include "dugong_shims.h"

int dugong_punch_hole(int descriptor, int64_t offset, int64_t length) {
    return fallocate(descriptor, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}

// The writer's presence: an open-file-description write lock on byte 0 of the lock file, held
// besides the flock that excludes other writers. Unlike flock, it can be tested without taking
// it (F_OFD_GETLK), so readers learn whether a writer has the store open without ever making a
// writer's open fail. OFD locks and flocks are independent on Linux.
static struct flock writer_byte(short type) {
    struct flock lock = {0};
    lock.l_type = type;
    lock.l_whence = SEEK_SET;
    lock.l_start = 0;
    lock.l_len = 1;
    lock.l_pid = 0;
    return lock;
}

// Sets the mark as a lock of `type` (F_OFD_SETLK): 0, or -1 with errno.
static int set_mark(int descriptor, short type) {
    struct flock lock = writer_byte(type);
    return fcntl(descriptor, F_OFD_SETLK, &lock);
}

// Whether another open file description holds a lock that conflicts with one of `type`
// (F_OFD_GETLK, nothing taken): 1, 0, or -1 with errno.
static int holds_mark(int descriptor, short type) {
    struct flock lock = writer_byte(type);
    if (fcntl(descriptor, F_OFD_GETLK, &lock) != 0) return -1;
    return lock.l_type == F_UNLCK ? 0 : 1;
}

int dugong_mark_writer_present(int descriptor) { return set_mark(descriptor, F_WRLCK); }

int dugong_writer_is_present(int descriptor) { return holds_mark(descriptor, F_RDLCK); }

// The mark on the store's directory too: a lock file removed under the writer takes its mark
// with it (readers would see no writer), the directory stays the writer's. A directory opens
// read-only only, so its mark is a read lock, and it is tested as a write lock would be.
int dugong_mark_directory_writer_present(int descriptor) { return set_mark(descriptor, F_RDLCK); }

int dugong_directory_writer_is_present(int descriptor) { return holds_mark(descriptor, F_WRLCK); }

// Holes are skipped when a reader looks for zeros: on tmpfs, reading a hole through a mapping
// allocates its pages (and faults when the file system is full).
int64_t dugong_seek_data_or_hole(int descriptor, int64_t offset, int hole) {
    return (int64_t)lseek(descriptor, (off_t)offset, hole ? SEEK_HOLE : SEEK_DATA);
}
