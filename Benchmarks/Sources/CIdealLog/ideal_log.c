// The ideal log. Frame: u32 crc32c(stored) | u32 stored length | u32 raw length | stored bytes.
#define _GNU_SOURCE
#include "ideal_log.h"
#include <fcntl.h>
#include <nmmintrin.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

struct ideal_log {
    int fd;
    size_t offset;
    uint8_t *raw, *frame;
    size_t capacity_raw, capacity_frame;
    // One Zstandard context for the log's life, reset per frame (as DugongStore keeps one per
    // thread), set as DugongStore's: level -1, no content size, checksum or dictionary id.
    ZSTD_CCtx *compressor;
};

__attribute__((target("sse4.2")))
static uint32_t crc32c(const uint8_t *p, size_t n) {
    uint64_t c = 0xFFFFFFFFu;
    while (n >= 8) { uint64_t w; memcpy(&w, p, 8); c = _mm_crc32_u64(c, w); p += 8; n -= 8; }
    while (n--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}

ideal_log *ideal_log_create(const char *path, size_t capacity) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return NULL;
    if (posix_fallocate(fd, 0, (off_t)capacity) != 0) { close(fd); return NULL; }
    ideal_log *log = calloc(1, sizeof *log);
    log->fd = fd;
    log->compressor = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(log->compressor, ZSTD_c_compressionLevel, -1);
    ZSTD_CCtx_setParameter(log->compressor, ZSTD_c_contentSizeFlag, 0);
    ZSTD_CCtx_setParameter(log->compressor, ZSTD_c_checksumFlag, 0);
    ZSTD_CCtx_setParameter(log->compressor, ZSTD_c_dictIDFlag, 0);
    return log;
}

static int grow(uint8_t **buffer, size_t *capacity, size_t needed) {
    if (needed <= *capacity) return 0;
    uint8_t *bigger = realloc(*buffer, needed);
    if (!bigger) return -1;
    *buffer = bigger;
    *capacity = needed;
    return 0;
}

int ideal_log_append(ideal_log *log, const uint8_t *events, const size_t *lengths, size_t count, int sync) {
    size_t raw = 0;
    for (size_t i = 0; i < count; i++) raw += 4 + lengths[i];
    if (grow(&log->raw, &log->capacity_raw, raw) || grow(&log->frame, &log->capacity_frame, 12 + raw + raw / 8 + 64))
        return -1;
    size_t at = 0, from = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t length = (uint32_t)lengths[i];
        memcpy(log->raw + at, &length, 4);
        memcpy(log->raw + at + 4, events + from, lengths[i]);
        at += 4 + lengths[i];
        from += lengths[i];
    }
    if (ZSTD_isError(ZSTD_CCtx_reset(log->compressor, ZSTD_reset_session_only))) return -1;
    size_t stored = ZSTD_compress2(log->compressor, log->frame + 12, log->capacity_frame - 12, log->raw, raw);
    if (ZSTD_isError(stored)) return -1;
    uint32_t header[3] = {crc32c(log->frame + 12, stored), (uint32_t)stored, (uint32_t)raw};
    memcpy(log->frame, header, 12);
    size_t total = 12 + stored, done = 0;
    while (done < total) {
        ssize_t n = pwrite(log->fd, log->frame + done, total - done, (off_t)(log->offset + done));
        if (n < 0) return -1;
        done += (size_t)n;
    }
    log->offset += total;
    return sync ? fdatasync(log->fd) : 0;
}

size_t ideal_log_size(const ideal_log *log) { return log->offset; }

void ideal_log_close(ideal_log *log) {
    ftruncate(log->fd, (off_t)log->offset);
    fsync(log->fd);
    close(log->fd);
    ZSTD_freeCCtx(log->compressor);
    free(log->raw);
    free(log->frame);
    free(log);
}

long ideal_log_replay(const char *path, size_t *bytes) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size == 0) { close(fd); return st.st_size == 0 ? 0 : -1; }
    const uint8_t *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return -1;
    size_t size = (size_t)st.st_size, at = 0, capacity = 0;
    uint8_t *raw = NULL;
    long events = 0;
    *bytes = 0;
    // One Zstandard context for the whole replay, reset per frame (as DugongStore keeps one per
    // thread); each frame must be exactly one Zstandard frame (as DugongStore checks).
    ZSTD_DCtx *decompressor = ZSTD_createDCtx();
    if (!decompressor) { munmap((void *)map, size); return -1; }
    while (at + 12 <= size) {
        uint32_t header[3];
        memcpy(header, map + at, 12);
        if (header[1] == 0 || at + 12 + header[1] > size) break;
        if (crc32c(map + at + 12, header[1]) != header[0]) { events = -1; break; }
        if (grow(&raw, &capacity, header[2]) || ZSTD_findFrameCompressedSize(map + at + 12, header[1]) != header[1] ||
            ZSTD_isError(ZSTD_DCtx_reset(decompressor, ZSTD_reset_session_only))) { events = -1; break; }
        size_t produced = ZSTD_decompressDCtx(decompressor, raw, header[2], map + at + 12, header[1]);
        if (ZSTD_isError(produced) || produced != header[2]) { events = -1; break; }
        for (size_t p = 0; p + 4 <= header[2];) {
            uint32_t length;
            memcpy(&length, raw + p, 4);
            *bytes += length;
            p += 4 + length;
            events++;
        }
        at += 12 + header[1];
    }
    ZSTD_freeDCtx(decompressor);
    munmap((void *)map, size);
    free(raw);
    return events;
}
