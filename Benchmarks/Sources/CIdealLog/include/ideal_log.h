#ifndef IDEAL_LOG_H
#define IDEAL_LOG_H
#include <stddef.h>
#include <stdint.h>

/// The bound a log-structured event store can reach on this machine: frames of events (each a
/// u32 length and its bytes), compressed as DugongStore compresses them (format version 4: one
/// Zstandard frame at level −1, one context reset per frame), checksummed with CRC-32C,
/// written with pwrite to a preallocated file and made durable with fdatasync. No index.
/// The callers give it each event's fields as a caller of DugongStore supplies them, packed
/// (u8 stream-name length, the name, u8 type length, the type, the 16-byte id, the i64 timestamp
/// in milliseconds, u32 data length, the data, u32 metadata length, the metadata; integers
/// little-endian), so that it compresses and stores what an event store must keep.
typedef struct ideal_log ideal_log;

/// Creates the log file at `path`, preallocated to `capacity` bytes. NULL on failure (errno set).
ideal_log *ideal_log_create(const char *path, size_t capacity);

/// Appends one frame holding `count` events, stored one after another in `events` with the
/// given lengths, and syncs it (when `sync`). Returns 0, or -1 on failure.
int ideal_log_append(ideal_log *log, const uint8_t *events, const size_t *lengths, size_t count, int sync);

/// Bytes of frames written.
size_t ideal_log_size(const ideal_log *log);

void ideal_log_close(ideal_log *log);

/// Reads the log at `path` back: checks every frame's CRC, decompresses it and walks its events.
/// Returns the number of events, or -1 on damage or failure. `*bytes` gets the sum of event lengths.
long ideal_log_replay(const char *path, size_t *bytes);

#endif
