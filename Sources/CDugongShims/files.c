// GNU-only file system calls the engine needs and Swift's Glibc module does not import.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/falloc.h>

#include "dugong_shims.h"

int dugong_punch_hole(int descriptor, int64_t offset, int64_t length) {
    return fallocate(descriptor, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}
