#ifndef DUGONG_SHIMS_H
#define DUGONG_SHIMS_H

#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), continuing from `crc`
/// (pass 0 to start). Initial value and final xor are 0xFFFFFFFF, applied inside, so
/// dugong_crc32c(0, "123456789", 9) == 0xE3069283. Uses SSE4.2 when the CPU has it.
uint32_t dugong_crc32c(uint32_t crc, const void *data, size_t length);

/// Asks the processor to bring the cache line holding `address` in ahead of a read. A hint:
/// it never faults, whatever the address (an unmapped one is ignored).
static inline void dugong_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

/// Same as dugong_crc32c, always with the portable table code (for tests).
uint32_t dugong_crc32c_portable(uint32_t crc, const void *data, size_t length);

/// Whether dugong_crc32c uses the SSE4.2 instruction on this CPU.
int dugong_crc32c_is_hardware(void);

/// Compresses `source` as raw DEFLATE (no zlib or gzip wrapper, 32 KiB window) at `level`
/// (1..9) into `destination`, with the preset dictionary `dictionary` (NULL or length 0: none).
/// Returns the compressed length, or -1 when it does not fit in `capacity` bytes, or -2 on a
/// zlib error.
long dugong_deflate_raw(const void *source, size_t length, void *destination, size_t capacity, int level,
                        const void *dictionary, size_t dictionary_length);

/// Inflates raw DEFLATE `source`, compressed with the preset dictionary `dictionary` (NULL or
/// length 0: none), into exactly `expected` bytes at `destination`, which has room for
/// `capacity` ≥ `expected` bytes (room past `expected` lets zlib decode the last symbols on its
/// fast path; nothing is promised about those bytes). Returns 0 on success, -1 when the stream
/// is damaged or does not inflate to exactly `expected` bytes.
int dugong_inflate_raw(const void *source, size_t length, void *destination, size_t expected, size_t capacity,
                       const void *dictionary, size_t dictionary_length);

/// Compresses `source` as one Zstandard frame (RFC 8878) at `level` (negative levels are the
/// fast ones) into `destination`, with `dictionary` (NULL or length 0: none) as a raw-content
/// dictionary: its bytes taken as if they came just before `source`. The frame has no content
/// size, checksum or dictionary id. Returns the compressed length, or -1 when it does not fit
/// in `capacity` bytes, or -2 on any other error.
long dugong_zstd_compress(const void *source, size_t length, void *destination, size_t capacity, int level,
                          const void *dictionary, size_t dictionary_length);

/// A raw-content dictionary digested once for the compressor at `level` (libzstd's CDict, a
/// copy of the bytes with the compressor's tables filled from them), for
/// dugong_zstd_compress_digested. NULL when it cannot be made, and for bytes that begin with
/// Zstandard's dictionary magic, which libzstd would parse as a Zstandard dictionary: those go
/// in as a prefix per frame (dugong_zstd_compress). Free it with dugong_zstd_digest_free.
void *dugong_zstd_digest(const void *dictionary, size_t length, int level);

/// Frees a digest of dugong_zstd_digest (NULL: nothing).
void dugong_zstd_digest_free(void *digest);

/// dugong_zstd_compress with a digested dictionary (at the level it was digested for): the
/// same kind of frame, without loading the dictionary's bytes into the compressor's tables
/// for every frame.
long dugong_zstd_compress_digested(const void *source, size_t length, void *destination, size_t capacity,
                                   const void *digest);

/// Decompresses `source`, which must be exactly one Zstandard frame made with the raw-content
/// dictionary `dictionary` (NULL or length 0: none), into exactly `expected` bytes at
/// `destination`. Returns 0 on success, -1 when the bytes are not one such frame or do not
/// decompress to exactly `expected` bytes.
int dugong_zstd_decompress(const void *source, size_t length, void *destination, size_t expected,
                           const void *dictionary, size_t dictionary_length);

/// The dictionary `dictionary` (1 byte to 2 GiB; LZ4 uses its last 64 KiB) copied and loaded
/// once into LZ4's compression table, for dugong_lz4_compress. NULL when it cannot be made.
/// Free it with dugong_lz4_digest_free. Any number of threads may compress with it at once.
void *dugong_lz4_digest(const void *dictionary, size_t length);

/// Frees a digest of dugong_lz4_digest (NULL: nothing).
void dugong_lz4_digest_free(void *digest);

/// Compresses `source` as one LZ4 block (LZ4's block format, no frame around it) into
/// `destination`, with the digested dictionary `digest` (NULL: none) as the history just
/// before `source`. Returns the compressed length, or -1 when it does not fit in `capacity`
/// bytes, or -2 on any other error.
long dugong_lz4_compress(const void *source, size_t length, void *destination, size_t capacity, const void *digest);

/// Decompresses `source`, exactly one LZ4 block made with the dictionary `dictionary` (NULL or
/// length 0: none) as its history, into exactly `expected` bytes at `destination`, checking
/// every rule of FORMAT.md §7 (lz4_block.c). Bytes from `expected` to `capacity` (≥ expected)
/// are room it may write anything into (32 bytes or more of it make it faster). Returns 0 on
/// success, -1 when the bytes are not such a block or do not decompress to exactly `expected`
/// bytes.
int dugong_lz4_decompress(const void *source, size_t length, void *destination, size_t expected, size_t capacity,
                          const void *dictionary, size_t dictionary_length);

/// dugong_lz4_decompress (with no room past `expected`) done by liblz4's safe decoder (after a walk of the block that refuses
/// offset 0, which liblz4 1.9.4 accepts): the reference the tests and the fuzz target compare
/// dugong_lz4_decompress with, verdict and bytes.
int dugong_lz4_decompress_liblz4(const void *source, size_t length, void *destination, size_t expected,
                                 const void *dictionary, size_t dictionary_length);

/// Upper bound of dugong_deflate_raw's output for `length` input bytes.
size_t dugong_deflate_bound(size_t length);

/// Frees the blocks of bytes [offset, offset + length) of the file `descriptor` without
/// changing its size (Linux fallocate with FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE): the
/// range then reads as zeros. Returns 0, or -1 with errno set (EOPNOTSUPP where the file
/// system cannot punch holes).
int dugong_punch_hole(int descriptor, int64_t offset, int64_t length);

/// Marks the writer's presence: an open-file-description write lock (F_OFD_SETLK) on byte 0 of
/// the file open as `descriptor`, held until it closes. 0, or -1 with errno.
int dugong_mark_writer_present(int descriptor);

/// Whether another open file description holds that lock (F_OFD_GETLK, nothing taken): 1 if
/// one does, 0 if none does, -1 with errno when the file system cannot tell.
int dugong_writer_is_present(int descriptor);

/// lseek(descriptor, offset, SEEK_DATA) (`hole` 0) or SEEK_HOLE (`hole` 1): the next offset at
/// or after `offset` that holds data, or that begins a hole (the end of the file counts as one).
/// -1 with errno (ENXIO: none after `offset`; EINVAL where the file system cannot tell).
int64_t dugong_seek_data_or_hole(int descriptor, int64_t offset, int hole);

/// The same mark on a directory open read-only as `descriptor` (a directory cannot be opened for
/// writing): an open-file-description read lock on byte 0. 0, or -1 with errno.
int dugong_mark_directory_writer_present(int descriptor);

/// Whether another open file description holds a lock on byte 0 of the directory open as
/// `descriptor` (tested as a write lock would be: a read lock conflicts). 1, 0, or -1 with errno.
int dugong_directory_writer_is_present(int descriptor);

/// Registers the mapping of `length` bytes at `start` of the file open as `descriptor` (from
/// offset 0; a segment file's, read-only and shared) so that a read through it past the file's
/// end, once another program shortened the file, gets a page of zeros instead of ending the
/// process with SIGBUS; so does a page the file has whose fault stays after three tries (an I/O
/// error), but the mapping is then marked unreadable (dugong_mapping_was_unreadable). Other
/// faults go on to the handler installed before. The first call installs the SIGBUS handler. The descriptor must stay open until dugong_mapping_unregister. Returns the
/// slot, or -1 when all 65,536 slots are taken (the mapping is then not guarded).
long dugong_mapping_register(const void *start, size_t length, int descriptor);

/// Forgets a registered mapping (a slot from dugong_mapping_register; -1 is ignored). Call it
/// before the mapping is removed and the descriptor closed.
void dugong_mapping_unregister(long slot);

/// Whether the SIGBUS handler mapped a page of zeros into the slot's mapping: it no longer shows
/// the file there (even once the file is whole again), and must be mapped anew.
int dugong_mapping_was_patched(long slot);

/// How many pages of zeros the SIGBUS handler has mapped in this process past files' ends.
long dugong_mapping_zero_pages(void);

/// Whether a page of the slot's mapping that the file has could not be read (the disk failed
/// it three times): the mapping shows zeros there, which are not the file's bytes.
int dugong_mapping_was_unreadable(long slot);

/// How many pages of zeros the SIGBUS handler has mapped in this process in place of pages
/// the disk failed.
long dugong_mapping_unreadable_pages(void);

/// The simulated disk's failing page (tests only): does to the page at `page` (page-aligned,
/// inside the slot's mapping) what the SIGBUS handler does to a page whose fault stays: marks
/// the slot unreadable, counts it, and maps a page of zeros there. The caller keeps the mapping
/// alive during the call. Returns 1, or 0 when the page is not in the slot's mapping or the
/// zeros could not be mapped.
int dugong_mapping_fail_page(long slot, const void *page);

#endif
