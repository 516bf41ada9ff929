#ifndef DUGONG_RANDOM_H
#define DUGONG_RANDOM_H

/// 16 random bytes for an event id from the kernel's generator (getrandom), pooled: one system
/// call per 255 ids, never the same bytes twice, fork-safe (a child starts with an empty pool).
/// Returns 0, or -1 when the kernel gives no random bytes (then `destination` holds anything).
int dugong_random_id(void *destination);

#endif
