// Codecs on DugongStore's frame shapes: bytes per event, and time and instructions per event to
// compress and to decompress, each codec with its context reused across frames as the engine
// reuses its zlib streams. Event-like payloads: ~150-byte JSON objects, each after 2 bytes and
// followed by 16 id-like bytes. Shapes: one 100-event frame (a commit of 100), or one 2-event
// frame compressed with a 4 KiB preset dictionary of earlier events (small commits).
// Not built by the package or the tests (only zlib is a dependency of the engine):
//   apt-get install zlib1g-dev libdeflate-dev libzstd-dev liblz4-dev valgrind
//   cc -O2 tools/codec/codec_compare.c -o /tmp/codec_compare -lz -ldeflate -lzstd -llz4
//   [SYNTHETIC=1] /tmp/codec_compare CODEC EVENTS DICTIONARY ROUNDS [LEVEL]
//     SYNTHETIC: the Benchmarks package's events (SyntheticEvents) instead of the default shape
//     CODEC: zlib, libdeflate, zstd, zstd-digested (the dictionary digested once: ZSTD_CDict and
//     ZSTD_DDict instead of a prefix per frame), lz4; DICTIONARY: 0 or 1 (libdeflate has no preset dictionaries)
// Instructions per event: run under `valgrind --tool=callgrind --toggle-collect=compress_all`
// (or `decompress_all`) at two ROUNDS, say 1000 and 2000, and divide the difference of the
// totals by the difference of ROUNDS × EVENTS.
#define ZSTD_STATIC_LINKING_ONLY
#include <libdeflate.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include <zstd.h>

enum { capacity = 1 << 22, dictionarySize = 4096 };

static size_t make(unsigned char *out, size_t first, size_t events) {
    size_t n = 0;
    for (size_t i = first; i < first + events; i++) {
        n += sprintf((char *)out + n,
            "%c%c{\"accountId\":\"acc-%zu\",\"amount\":%zu,\"currency\":\"EUR\",\"userId\":\"user-%zu\",\"traceId\":\"%016zx\",\"note\":\"deposit number %zu\"}",
            1, 16, i % 1000, (i * 7919) % 100000, (i * 31) % 5000, (size_t)(i * 0x9E3779B97F4A7C15ull), i);
        for (int k = 0; k < 16; k++) out[n++] = (unsigned char)(((i * 2654435761u) * (k + 1)) >> 13);
    }
    return n;
}

// The Benchmarks package's events (SyntheticEvents): random 16-byte ids, amounts, users and
// trace ids in ~170 bytes of JSON. Less repetitive than `make`'s: they take twice the inflating.
static unsigned long long splitmix = 0x5EED;
static unsigned long long next_random(void) {
    unsigned long long z = (splitmix += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t make_synthetic(unsigned char *out, size_t first, size_t events) {
    static const char *types[] = {"MoneyDeposited", "MoneyWithdrawn", "InterestAccrued"};
    size_t n = 0;
    for (size_t i = first; i < first + events; i++) {
        const char *type = types[next_random() % 3];
        unsigned long long amount = next_random() % 100000, user = next_random() % 10000, trace = next_random();
        size_t start = n;
        n += 2;  // a record's type and flags, then the JSON and the id (as `make`)
        n += sprintf((char *)out + n,
            "{\"type\":\"%s\",\"aggregateId\":\"acc-%zu\",\"amount\":%llu,\"currency\":\"EUR\",\"ts\":%llu,\"meta\":{\"user\":\"u-%llu\",\"ip\":\"10.0.%llu.%llu\",\"trace\":\"%llx\"}}",
            type, (i / 100) % 1000, amount, 1732000000000ull + i, user, user % 256, amount % 256, trace);
        out[start] = 1, out[start + 1] = 16;
        for (int k = 0; k < 2; k++) { unsigned long long word = next_random(); memcpy(out + n, &word, 8); n += 8; }
    }
    return n;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static const char *codec;
static int withDictionary, level;
static unsigned char *raw, *packed, *out, *dictionary;
static size_t rawLength, packedLength, dictionaryLength;
static z_stream deflater, inflater;
static struct libdeflate_compressor *ldc;
static struct libdeflate_decompressor *ldd;
static ZSTD_CCtx *zc;
static ZSTD_DCtx *zd;
static ZSTD_CDict *zcd;
static ZSTD_DDict *zdd;
static LZ4_stream_t lz4;

__attribute__((noinline)) static int compress_all(int rounds) {
    for (int round = 0; round < rounds; round++) {
        if (!strcmp(codec, "zlib")) {
            deflateReset(&deflater);
            if (withDictionary) deflateSetDictionary(&deflater, dictionary, dictionaryLength);
            deflater.next_in = raw, deflater.avail_in = rawLength, deflater.next_out = packed, deflater.avail_out = capacity;
            if (deflate(&deflater, Z_FINISH) != Z_STREAM_END) return 1;
            packedLength = capacity - deflater.avail_out;
        } else if (!strcmp(codec, "libdeflate")) {
            if (withDictionary) { fputs("libdeflate has no preset dictionaries\n", stderr); return 2; }
            packedLength = libdeflate_deflate_compress(ldc, raw, rawLength, packed, capacity);
        } else if (!strcmp(codec, "zstd")) {
            ZSTD_CCtx_reset(zc, ZSTD_reset_session_only);
            if (withDictionary) ZSTD_CCtx_refPrefix(zc, dictionary, dictionaryLength);
            packedLength = ZSTD_compress2(zc, packed, capacity, raw, rawLength);
            if (ZSTD_isError(packedLength)) return 1;
        } else if (!strcmp(codec, "zstd-digested")) {
            // The dictionary digested once (as a segment's would be), referenced by every frame.
            ZSTD_CCtx_reset(zc, ZSTD_reset_session_only);
            if (withDictionary) ZSTD_CCtx_refCDict(zc, zcd);
            packedLength = ZSTD_compress2(zc, packed, capacity, raw, rawLength);
            if (ZSTD_isError(packedLength)) return 1;
        } else if (!strcmp(codec, "lz4")) {
            LZ4_resetStream_fast(&lz4);
            if (withDictionary) LZ4_loadDict(&lz4, (const char *)dictionary, (int)dictionaryLength);
            packedLength = LZ4_compress_fast_continue(&lz4, (const char *)raw, (char *)packed, (int)rawLength, capacity, 1);
        } else {
            fprintf(stderr, "unknown codec %s\n", codec);
            return 2;
        }
    }
    return 0;
}

__attribute__((noinline)) static int decompress_all(int rounds) {
    for (int round = 0; round < rounds; round++) {
        size_t length = 0;
        if (!strcmp(codec, "zlib")) {
            inflateReset(&inflater);
            if (withDictionary) inflateSetDictionary(&inflater, dictionary, dictionaryLength);
            inflater.next_in = packed, inflater.avail_in = packedLength, inflater.next_out = out, inflater.avail_out = rawLength + 258;
            if (inflate(&inflater, Z_FINISH) == Z_STREAM_END) length = rawLength + 258 - inflater.avail_out;
        } else if (!strcmp(codec, "libdeflate")) {
            libdeflate_deflate_decompress(ldd, packed, packedLength, out, rawLength, &length);
        } else if (!strcmp(codec, "zstd")) {
            if (withDictionary) ZSTD_DCtx_refPrefix(zd, dictionary, dictionaryLength);
            length = ZSTD_decompressDCtx(zd, out, rawLength, packed, packedLength);
        } else if (!strcmp(codec, "zstd-digested")) {
            if (withDictionary) ZSTD_DCtx_refDDict(zd, zdd);
            length = ZSTD_decompressDCtx(zd, out, rawLength, packed, packedLength);
        } else {
            int n = withDictionary
                ? LZ4_decompress_safe_usingDict((const char *)packed, (char *)out, (int)packedLength, (int)rawLength, (const char *)dictionary, (int)dictionaryLength)
                : LZ4_decompress_safe((const char *)packed, (char *)out, (int)packedLength, (int)rawLength);
            length = n < 0 ? 0 : (size_t)n;
        }
        if (length != rawLength) { fprintf(stderr, "%s: decompressed %zu of %zu bytes\n", codec, length, rawLength); return 1; }
    }
    return memcmp(out, raw, rawLength) != 0;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fputs("usage: codec_compare zlib|libdeflate|zstd|zstd-digested|lz4 EVENTS DICTIONARY(0|1) ROUNDS [LEVEL]\n", stderr);
        return 2;
    }
    codec = argv[1];
    size_t events = strtoul(argv[2], NULL, 10);
    int rounds = atoi(argv[4]);
    withDictionary = atoi(argv[3]), level = argc > 5 ? atoi(argv[5]) : 1;
    raw = malloc(capacity), packed = malloc(capacity), out = malloc(capacity + 258), dictionary = malloc(1 << 16);
    int synthetic = getenv("SYNTHETIC") != NULL;
    if (withDictionary) {  // the last 4 KiB of events written before the frame
        size_t made = synthetic ? make_synthetic(dictionary, 100000, 40) : make(dictionary, 100000, 40);
        memmove(dictionary, dictionary + made - dictionarySize, dictionarySize);
        dictionaryLength = dictionarySize;
    }
    rawLength = synthetic ? make_synthetic(raw, 0, events) : make(raw, 0, events);
    deflateInit2(&deflater, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    inflateInit2(&inflater, -15);
    ldc = libdeflate_alloc_compressor(level);
    ldd = libdeflate_alloc_decompressor();
    zc = ZSTD_createCCtx();
    zd = ZSTD_createDCtx();
    ZSTD_CCtx_setParameter(zc, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(zc, ZSTD_c_contentSizeFlag, 0);  // the frame header has the raw length
    ZSTD_CCtx_setParameter(zc, ZSTD_c_checksumFlag, 0);     // and a CRC-32C
    ZSTD_CCtx_setParameter(zc, ZSTD_c_format, ZSTD_f_zstd1_magicless);
    ZSTD_DCtx_setParameter(zd, ZSTD_d_format, ZSTD_f_zstd1_magicless);
    LZ4_initStream(&lz4, sizeof lz4);
    if (withDictionary) {
        zcd = ZSTD_createCDict_advanced(dictionary, dictionaryLength, ZSTD_dlm_byRef, ZSTD_dct_rawContent,
            ZSTD_getCParams(level, 0, dictionaryLength), ZSTD_defaultCMem);
        zdd = ZSTD_createDDict_advanced(dictionary, dictionaryLength, ZSTD_dlm_byRef, ZSTD_dct_rawContent, ZSTD_defaultCMem);
    }

    double start = now();
    int failure = compress_all(rounds);
    if (failure) return failure;
    double compressed = now();
    failure = decompress_all(rounds);
    double decompressed = now();
    printf("%s level %d, %zu-event frame%s: %zu raw bytes, %zu packed (%.1f per event); compress %.1f ns per event, decompress %.1f\n",
        codec, level, events, withDictionary ? " with a 4 KiB dictionary" : "", rawLength, packedLength, (double)packedLength / events,
        (compressed - start) / rounds / events, (decompressed - compressed) / rounds / events);
    return failure;
}
