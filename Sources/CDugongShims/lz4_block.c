// The reader of LZ4 blocks (FORMAT.md §7, version 5): one pass over the block that checks
// every rule of the format as it decodes, so that nothing is walked twice. liblz4's decoder
// (dugong_lz4_decompress_liblz4, codecs.c) is kept as the reference the tests and the fuzz
// target compare this one with, verdict and bytes.
//
// Every read of the input is within [source, source + length), every read of the dictionary
// within it, and every write within [destination, destination + capacity). The general path
// copies in moves of 16 (or 8, 4) bytes ending with one that ends exactly at the copy's end,
// so it needs no room after it, and makes no call to memcpy for the short copies a small
// frame is made of. The common sequence (lengths in the token alone, a match from 8 bytes back
// or more) takes a shorter path where there is room: 16 bytes of literals and 32 of match
// moved whatever their lengths, the bytes past them (up to `capacity`) written again by what
// follows or left as scratch past `expected`.
#include "dugong_shims.h"
#include <limits.h>
#include <string.h>

typedef unsigned char byte;

static inline void copy16(byte *to, const byte *from) { memcpy(to, from, 16); }
static inline void copy8(byte *to, const byte *from) { memcpy(to, from, 8); }
static inline void copy4(byte *to, const byte *from) { memcpy(to, from, 4); }

// Copies `count` (`step` or more) bytes forward in steps of `step` and a last one ending at the
// end (`step` a constant where it is called, so each move is one load and one store). Right
// for separate ranges, and for a match within the output at least `step` bytes back: each step
// reads only bytes that earlier steps (or earlier sequences) wrote.
static inline void copy_in_steps(byte *to, const byte *from, size_t count, size_t step) {
    size_t done = 0;
    while (count - done > step) {
        memcpy(to + done, from + done, step);
        done += step;
    }
    memcpy(to + count - step, from + count - step, step);
}

// Copies `count` bytes forward: in steps of 16 (of 8, 4 for shorter ones) and a last one
// ending at the end. Right for separate ranges, and for a match within the output 16 bytes
// back or more.
static inline void copy_forward(byte *to, const byte *from, size_t count) {
    if (count >= 16) {
        copy_in_steps(to, from, count, 16);
    } else if (count >= 8) {
        copy8(to, from);
        copy8(to + count - 8, from + count - 8);
    } else if (count >= 4) {
        copy4(to, from);
        copy4(to + count - 4, from + count - 4);
    } else {
        for (size_t index = 0; index < count; index++) to[index] = from[index];
    }
}

// A length's extension bytes (lz4_Block_format.md: added while each is 255), from *at on.
// Returns 0 when the input ends before the last one; the sum stays below 256 * length.
static inline int extended(const byte **at, const byte *end, size_t *value) {
    byte more;
    do {
        if (*at >= end) return 0;
        more = *(*at)++;
        *value += more;
    } while (more == 255);
    return 1;
}

int dugong_lz4_decompress(const void *source, size_t length, void *destination, size_t expected, size_t capacity,
                          const void *dictionary, size_t dictionary_length) {
    if (length == 0 || length > INT_MAX || expected > INT_MAX || capacity < expected || dictionary_length > INT_MAX) return -1;
    const byte *in = source;
    const byte *const in_end = in + length;
    byte *out = destination;
    byte *const out_start = out;
    byte *const out_end = out + expected;
    byte *const room_end = out + capacity;
    const byte *const history = dictionary;
    for (;;) {
        // A block that ends after a match has no last literals (in never passes in_end: every
        // step past a byte checked that it was there).
        if (in >= in_end) return -1;
        const unsigned token = *in++;
        size_t literals = token >> 4;
        if (literals < 15 && in_end - in >= 18 && room_end - out >= 48) {
            // At most 14 literals with 18 bytes of input left: not the last sequence (that one
            // ends exactly at the block's end), and 16 bytes readable and writable here.
            if (literals > (size_t)(out_end - out)) return -1;
            copy16(out, in);
            in += literals;
            out += literals;
        } else {
            if (literals == 15 && !extended(&in, in_end, &literals)) return -1;
            if (literals > (size_t)(in_end - in) || literals > (size_t)(out_end - out)) return -1;
            copy_forward(out, in, literals);
            in += literals;
            out += literals;
            // The last sequence: literals only, ending exactly at the block's end and filling
            // the output exactly.
            if (in == in_end) return out == out_end ? 0 : -1;
        }
        // A match starts at least 12 bytes before the output's end (the block format's end rule).
        if (out_end - out < 12 || in_end - in < 2) return -1;
        const size_t offset = (size_t)in[0] | (size_t)in[1] << 8;
        in += 2;
        size_t match = token & 15;
        if (match == 15 && !extended(&in, in_end, &match)) return -1;
        match += 4;
        // Offsets of 0 are not LZ4 (liblz4 1.9.4 would copy whatever its buffer held); a match
        // ends at least 5 bytes before the output's end (out_end - out >= 12 here).
        if (offset == 0 || match > (size_t)(out_end - out) - 5) return -1;
        const size_t written = (size_t)(out - out_start);
        if (match <= 32 && room_end - out >= 32) {
            // 32 bytes moved whatever the match's length. Within the output, from 16 back or
            // more: each 16 read lies before the 16 written (the second 16 may read what the
            // first wrote, as a match overlapping its own output must); from 8 to 15 back, in
            // moves of 8 for the same reason. From the dictionary: when 32 bytes of it remain.
            if (offset <= written) {
                const byte *from = out - offset;
                if (offset >= 16) {
                    copy16(out, from);
                    copy16(out + 16, from + 16);
                    out += match;
                    continue;
                }
                if (offset >= 8) {
                    copy8(out, from);
                    copy8(out + 8, from + 8);
                    copy8(out + 16, from + 16);
                    copy8(out + 24, from + 24);
                    out += match;
                    continue;
                }
            } else if (offset - written >= 32 && offset - written <= dictionary_length) {
                const byte *from = history + (dictionary_length - (offset - written));
                copy16(out, from);
                copy16(out + 16, from + 16);
                out += match;
                continue;
            }
        }
        if (offset > written) {
            // From the dictionary, the history just before the output's first byte.
            const size_t back = offset - written;  // bytes before the dictionary's end
            if (back > dictionary_length) return -1;
            const byte *from = history + (dictionary_length - back);
            if (back >= match) {
                copy_forward(out, from, match);
                out += match;
                continue;
            }
            // The match runs from the dictionary's end on into the output's start.
            copy_forward(out, from, back);
            out += back;
            match -= back;
        }
        // Within the output: `offset` back from `out` (≥ 1, ≤ what is written), which may
        // overlap the bytes this match writes (a run repeats the last `offset` bytes).
        const byte *from = out - offset;
        byte *const match_end = out + match;
        if (offset >= 16) {
            copy_forward(out, from, match);
        } else if (offset >= 8 && match >= 8) {
            copy_in_steps(out, from, match, 8);
        } else {
            while (out < match_end) *out++ = *from++;
        }
        out = match_end;
    }
}
