// The frame codecs: raw DEFLATE through zlib (format versions 1 to 3), Zstandard (version
// 4 on) and LZ4 blocks (small frames, version 5 on). deflateInit2/inflateInit2 are C macros, which is why these live in C rather than in
// Swift. Each thread keeps one context of each kind and resets it per call: initializing a
// deflate stream allocates and clears ~256 KiB, a Zstandard context more, which would dominate
// small frames.
#include "dugong_shims.h"
#include <limits.h>
#include <lz4.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

size_t dugong_deflate_bound(size_t length) {
    // zlib's deflateBound for raw streams is smaller than this; stay conservative.
    return length + (length >> 12) + (length >> 14) + (length >> 25) + 64;
}

typedef struct {
    z_stream deflater, inflater;
    int deflater_level;  // 0: not initialized
    int inflater_ready;
    ZSTD_CCtx *compressor;  // NULL: not made yet
    int compressor_level;
    ZSTD_DCtx *decompressor;
    LZ4_stream_t *lz4;  // NULL: not made yet
} streams;

static pthread_key_t streams_key;
static pthread_once_t streams_once = PTHREAD_ONCE_INIT;

static void release_streams(void *value) {
    streams *s = value;
    if (s->deflater_level) deflateEnd(&s->deflater);
    if (s->inflater_ready) inflateEnd(&s->inflater);
    ZSTD_freeCCtx(s->compressor);
    ZSTD_freeDCtx(s->decompressor);
    free(s->lz4);
    free(s);
}

static int key_made;

static void make_key(void) { key_made = pthread_key_create(&streams_key, release_streams) == 0; }

static streams *thread_streams(void) {
    pthread_once(&streams_once, make_key);
    if (!key_made) return NULL;
    streams *s = pthread_getspecific(streams_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return NULL;
        if (pthread_setspecific(streams_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    return s;
}

long dugong_deflate_raw(const void *source, size_t length, void *destination, size_t capacity, int level,
                        const void *dictionary, size_t dictionary_length) {
    streams *s = thread_streams();
    if (!s) return -2;
    z_stream *z = &s->deflater;
    if (s->deflater_level != level) {
        if (s->deflater_level) deflateEnd(z);
        s->deflater_level = 0;
        *z = (z_stream){0};
        if (deflateInit2(z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -2;
        s->deflater_level = level;
    } else if (deflateReset(z) != Z_OK) {
        return -2;
    }
    if (dictionary_length > 0 && deflateSetDictionary(z, dictionary, (uInt)dictionary_length) != Z_OK) return -2;
    z->next_in = (Bytef *)source;
    z->avail_in = (uInt)length;
    z->next_out = destination;
    z->avail_out = (uInt)capacity;
    int status = deflate(z, Z_FINISH);
    if (status == Z_STREAM_END) return (long)z->total_out;
    return status == Z_OK || status == Z_BUF_ERROR ? -1 : -2;
}

int dugong_inflate_raw(const void *source, size_t length, void *destination, size_t expected, size_t capacity,
                       const void *dictionary, size_t dictionary_length) {
    if (capacity < expected) return -1;
    streams *s = thread_streams();
    if (!s) return -1;
    z_stream *z = &s->inflater;
    if (!s->inflater_ready) {
        *z = (z_stream){0};
        if (inflateInit2(z, -15) != Z_OK) return -1;
        s->inflater_ready = 1;
    } else if (inflateReset(z) != Z_OK) {
        return -1;
    }
    // A raw stream has no dictionary id: the dictionary is set before inflating starts.
    if (dictionary_length > 0 && inflateSetDictionary(z, dictionary, (uInt)dictionary_length) != Z_OK) return -1;
    z->next_in = (Bytef *)source;
    z->avail_in = (uInt)length;
    z->next_out = destination;
    // zlib's fast loop needs 258 bytes of output room: without slack the last 258 bytes of
    // every frame (most of a small one) went through its slow loop.
    z->avail_out = (uInt)capacity;
    int status = inflate(z, Z_FINISH);
    return status == Z_STREAM_END && z->total_out == expected && z->avail_in == 0 ? 0 : -1;
}

// The thread's compressor, made on first use.
static ZSTD_CCtx *thread_compressor(void) {
    streams *s = thread_streams();
    if (!s) return NULL;
    if (!s->compressor) {
        s->compressor = ZSTD_createCCtx();
        if (!s->compressor) return NULL;
        // The frame header carries neither the content size (the frame header of the store
        // has it), nor a checksum (CRC-32C covers the stored bytes), nor a dictionary id (a
        // raw-content dictionary has none).
        if (ZSTD_isError(ZSTD_CCtx_setParameter(s->compressor, ZSTD_c_contentSizeFlag, 0)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(s->compressor, ZSTD_c_checksumFlag, 0)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(s->compressor, ZSTD_c_dictIDFlag, 0))) {
            ZSTD_freeCCtx(s->compressor);
            s->compressor = NULL;
            return NULL;
        }
        s->compressor_level = 0;
    }
    return s->compressor;
}

static long compressed_length(size_t written) {
    if (!ZSTD_isError(written)) return (long)written;
    return ZSTD_getErrorCode(written) == ZSTD_error_dstSize_tooSmall ? -1 : -2;
}

long dugong_zstd_compress(const void *source, size_t length, void *destination, size_t capacity, int level,
                          const void *dictionary, size_t dictionary_length) {
    ZSTD_CCtx *c = thread_compressor();
    if (!c) return -2;
    streams *s = thread_streams();
    // No digest left referenced (dugong_zstd_compress_digested lets go of its own; this makes
    // sure): a prefix below replaces it, but a frame without a dictionary would use it.
    if (ZSTD_isError(ZSTD_CCtx_reset(c, ZSTD_reset_session_only)) || ZSTD_isError(ZSTD_CCtx_refCDict(c, NULL))) return -2;
    if (s->compressor_level != level) {
        if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level))) return -2;
        s->compressor_level = level;
    }
    // A prefix is the dictionary's bytes as if they came just before the payload (a raw-content
    // dictionary); it applies to the next frame only.
    if (dictionary_length > 0 && ZSTD_isError(ZSTD_CCtx_refPrefix(c, dictionary, dictionary_length))) return -2;
    return compressed_length(ZSTD_compress2(c, destination, capacity, source, length));
}

static int begins_with_dictionary_magic(const void *dictionary, size_t length) {
    const unsigned char *d = dictionary;
    return length >= 4 && (d[0] | d[1] << 8 | d[2] << 16 | (uint32_t)d[3] << 24) == ZSTD_MAGIC_DICTIONARY;
}

void *dugong_zstd_digest(const void *dictionary, size_t length, int level) {
    // ZSTD_createCDict takes bytes without the magic as raw content (its "auto" type).
    if (length == 0 || begins_with_dictionary_magic(dictionary, length)) return NULL;
    return ZSTD_createCDict(dictionary, length, level);
}

void dugong_zstd_digest_free(void *digest) { ZSTD_freeCDict(digest); }

long dugong_zstd_compress_digested(const void *source, size_t length, void *destination, size_t capacity,
                                   const void *digest) {
    ZSTD_CCtx *c = thread_compressor();
    if (!c || !digest) return -2;
    if (ZSTD_isError(ZSTD_CCtx_reset(c, ZSTD_reset_session_only))) return -2;
    if (ZSTD_isError(ZSTD_CCtx_refCDict(c, digest))) return -2;
    size_t written = ZSTD_compress2(c, destination, capacity, source, length);
    // A digest stays referenced by the context (a session reset keeps it) until another
    // replaces it: it is let go after the frame. A frame that did not fit leaves the context
    // mid-frame, where it cannot be let go: the session is reset first.
    if (ZSTD_isError(ZSTD_CCtx_reset(c, ZSTD_reset_session_only)) || ZSTD_isError(ZSTD_CCtx_refCDict(c, NULL))) return -2;
    return compressed_length(written);
}

int dugong_zstd_decompress(const void *source, size_t length, void *destination, size_t expected,
                           const void *dictionary, size_t dictionary_length) {
    // A frame of the current Zstandard format only: libzstd may be built to decode the legacy
    // formats of its 0.x releases (other magic numbers) and skips skippable frames.
    const unsigned char *bytes = source;
    if (length < 4 || (bytes[0] | bytes[1] << 8 | bytes[2] << 16 | (uint32_t)bytes[3] << 24) != ZSTD_MAGICNUMBER) return -1;
    // Exactly one frame, ending where the stored bytes end (ZSTD_decompressDCtx would go on to
    // decode a second frame after the first).
    size_t frame = ZSTD_findFrameCompressedSize(source, length);
    if (ZSTD_isError(frame) || frame != length) return -1;
    streams *s = thread_streams();
    if (!s) return -1;
    if (!s->decompressor) {
        s->decompressor = ZSTD_createDCtx();
        if (!s->decompressor) return -1;
    }
    ZSTD_DCtx *d = s->decompressor;
    if (ZSTD_isError(ZSTD_DCtx_reset(d, ZSTD_reset_session_only))) return -1;
    // Output room of exactly `expected`: a frame that would decode to more fails.
    size_t produced;
    if (begins_with_dictionary_magic(dictionary, dictionary_length)) {
        // Raw content that begins like a Zstandard dictionary: ZSTD_decompress_usingDict would
        // parse it as one, so it goes in as a prefix, which is raw content always.
        if (ZSTD_isError(ZSTD_DCtx_refPrefix(d, dictionary, dictionary_length))) return -1;
        produced = ZSTD_decompressDCtx(d, destination, expected, source, length);
    } else {
        // Raw content referenced in place, as the compressor's prefix was (a prefix on the
        // context builds a dictionary object, a malloc and a free, per frame: ~500 instructions).
        produced = ZSTD_decompress_usingDict(d, destination, expected, source, length, dictionary, dictionary_length);
    }
    return !ZSTD_isError(produced) && produced == expected ? 0 : -1;
}

// A dictionary loaded into LZ4's table once, with its own copy of the bytes (the table points
// into them). Each frame starts from a copy of the loaded table, as lz4.h describes for a
// dictionary used many times: loading 4 KiB into the table per frame was ~30,000 instructions.
typedef struct {
    LZ4_stream_t loaded;
    size_t length;
    unsigned char bytes[];
} lz4_digest;

void *dugong_lz4_digest(const void *dictionary, size_t length) {
    if (length == 0 || length > INT_MAX) return NULL;
    lz4_digest *d = malloc(sizeof *d + length);
    if (!d) return NULL;
    memcpy(d->bytes, dictionary, length);
    d->length = length;
    LZ4_initStream(&d->loaded, sizeof d->loaded);
    LZ4_loadDict(&d->loaded, (const char *)d->bytes, (int)length);
    return d;
}

void dugong_lz4_digest_free(void *digest) { free(digest); }

long dugong_lz4_compress(const void *source, size_t length, void *destination, size_t capacity, const void *digest) {
    if (length > LZ4_MAX_INPUT_SIZE || capacity > INT_MAX) return -2;
    streams *s = thread_streams();
    if (!s) return -2;
    if (!s->lz4) {
        s->lz4 = malloc(sizeof *s->lz4);
        if (!s->lz4) return -2;
    }
    int written;
    if (digest) {
        memcpy(s->lz4, &((const lz4_digest *)digest)->loaded, sizeof *s->lz4);
        written = LZ4_compress_fast_continue(s->lz4, source, destination, (int)length, (int)capacity, 1);
    } else {
        written = LZ4_compress_fast_extState(s->lz4, source, destination, (int)length, (int)capacity, 1);
    }
    // 0: the block does not fit in `capacity` (LZ4 reports nothing else for valid arguments).
    return written > 0 ? written : -1;
}

// liblz4's safe decoder, with the block's offsets walked first: the reference that the tests
// and the fuzz target hold dugong_lz4_decompress (lz4_block.c) to. liblz4 checks everything the
// format requires but one: it copies a match of offset 0 from the output it is writing
// (whatever the buffer held), so a block with one is refused before it is decoded.
static int lz4_offsets_are_nonzero(const unsigned char *source, size_t length) {
    size_t at = 0;
    while (at < length) {
        unsigned token = source[at++];
        size_t literals = token >> 4;
        if (literals == 15) {
            unsigned char more;
            do {
                if (at >= length) return 0;
                more = source[at++];
                literals += more;
            } while (more == 255 && literals <= length);
        }
        if (literals > length - at) return 0;
        at += literals;
        if (at == length) return 1;  // the last sequence: literals only
        if (length - at < 2) return 0;
        if ((source[at] | source[at + 1] << 8) == 0) return 0;
        at += 2;
        if ((token & 15) == 15) {
            unsigned char more;
            do {
                if (at >= length) return 0;
                more = source[at++];
            } while (more == 255);
        }
    }
    return 0;  // ended after a match: no last literals
}

int dugong_lz4_decompress_liblz4(const void *source, size_t length, void *destination, size_t expected,
                                 const void *dictionary, size_t dictionary_length) {
    if (length == 0 || length > INT_MAX || expected > INT_MAX || dictionary_length > INT_MAX) return -1;
    if (!lz4_offsets_are_nonzero(source, length)) return -1;
    int produced = dictionary_length > 0
        ? LZ4_decompress_safe_usingDict(source, destination, (int)length, (int)expected, dictionary, (int)dictionary_length)
        : LZ4_decompress_safe(source, destination, (int)length, (int)expected);
    return produced >= 0 && (size_t)produced == expected ? 0 : -1;
}
