// Raw DEFLATE through zlib. deflateInit2/inflateInit2 are C macros, which is why these live
// in C rather than in Swift.
#include "dugong_shims.h"
#include <zlib.h>

size_t dugong_deflate_bound(size_t length) {
    // zlib's deflateBound for raw streams is smaller than this; stay conservative.
    return length + (length >> 12) + (length >> 14) + (length >> 25) + 64;
}

long dugong_deflate_raw(const void *source, size_t length, void *destination, size_t capacity, int level,
                        const void *dictionary, size_t dictionary_length) {
    z_stream stream = {0};
    if (deflateInit2(&stream, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -2;
    if (dictionary_length > 0 && deflateSetDictionary(&stream, dictionary, (uInt)dictionary_length) != Z_OK) {
        deflateEnd(&stream);
        return -2;
    }
    stream.next_in = (Bytef *)source;
    stream.avail_in = (uInt)length;
    stream.next_out = destination;
    stream.avail_out = (uInt)capacity;
    int status = deflate(&stream, Z_FINISH);
    long produced = (long)stream.total_out;
    deflateEnd(&stream);
    if (status == Z_STREAM_END) return produced;
    return status == Z_OK || status == Z_BUF_ERROR ? -1 : -2;
}

int dugong_inflate_raw(const void *source, size_t length, void *destination, size_t expected,
                       const void *dictionary, size_t dictionary_length) {
    z_stream stream = {0};
    if (inflateInit2(&stream, -15) != Z_OK) return -1;
    // A raw stream has no dictionary id: the dictionary is set before inflating starts.
    if (dictionary_length > 0 && inflateSetDictionary(&stream, dictionary, (uInt)dictionary_length) != Z_OK) {
        inflateEnd(&stream);
        return -1;
    }
    stream.next_in = (Bytef *)source;
    stream.avail_in = (uInt)length;
    stream.next_out = destination;
    stream.avail_out = (uInt)expected;
    int status = inflate(&stream, Z_FINISH);
    int complete = status == Z_STREAM_END && stream.total_out == expected && stream.avail_in == 0;
    inflateEnd(&stream);
    return complete ? 0 : -1;
}
