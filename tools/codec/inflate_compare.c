// Inflate speed of zlib and libdeflate on the same raw DEFLATE (zlib level 1, window 2^15, no
// dictionary) of event-like payloads: ~150-byte JSON objects each after 2 bytes and followed by
// 16 id-like bytes. Not built by the package or the tests (libdeflate is not a dependency):
//   apt-get install libdeflate-dev zlib1g-dev valgrind
//   cc -O2 tools/codec/inflate_compare.c -o /tmp/inflate_compare -lz -ldeflate
//   /tmp/inflate_compare EVENTS ROUNDS WHICH     (WHICH: 0 zlib, 1 libdeflate)
// Instructions per event: run under `valgrind --tool=callgrind` at ROUNDS 1000 and 2000 and
// divide the difference by 1000 × EVENTS.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include <libdeflate.h>
static size_t make(unsigned char *out, size_t events) {
    size_t n = 0;
    for (size_t i = 0; i < events; i++) {
        n += sprintf((char*)out + n, "%c%c{\"accountId\":\"acc-%zu\",\"amount\":%zu,\"currency\":\"EUR\",\"userId\":\"user-%zu\",\"traceId\":\"%016zx\",\"note\":\"deposit number %zu\"}",
            1, 16, i % 1000, (i * 7919) % 100000, (i * 31) % 5000, (size_t)(i * 0x9E3779B97F4A7C15ull), i);
        for (int k = 0; k < 16; k++) out[n++] = (unsigned char)((i * 2654435761u) >> (k % 24));
    }
    return n;
}
int main(int argc, char **argv) {
    if (argc != 4) { fputs("usage: inflate_compare EVENTS ROUNDS WHICH\n", stderr); return 2; }
    size_t events = atoi(argv[1]); int rounds = atoi(argv[2]); int which = atoi(argv[3]);
    unsigned char *raw = malloc(1 << 22), *comp = malloc(1 << 22), *out = malloc((1 << 22) + 258);
    size_t rawLen = make(raw, events);
    z_stream d; memset(&d, 0, sizeof d);
    deflateInit2(&d, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    d.next_in = raw; d.avail_in = rawLen; d.next_out = comp; d.avail_out = 1 << 22;
    deflate(&d, Z_FINISH); size_t compLen = (1 << 22) - d.avail_out;
    z_stream z; memset(&z, 0, sizeof z); inflateInit2(&z, -15);
    struct libdeflate_decompressor *ld = libdeflate_alloc_decompressor();
    struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
    for (int r = 0; r < rounds; r++) {
        if (which == 0) {
            inflateReset(&z); z.next_in = comp; z.avail_in = compLen; z.next_out = out; z.avail_out = rawLen + 258;
            if (inflate(&z, Z_FINISH) != Z_STREAM_END) { puts("zlib failed"); return 1; }
        } else {
            size_t actual;
            if (libdeflate_deflate_decompress(ld, comp, compLen, out, rawLen, &actual) != 0 || actual != rawLen) { puts("ld failed"); return 1; }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("%s events %zu raw %zu comp %zu: %.1f ns/event, %.2f GB/s\n", which ? "libdeflate" : "zlib", events, rawLen, compLen, ns / rounds / events, rawLen * (double)rounds / ns);
    return memcmp(out, raw, rawLen) != 0;
}
