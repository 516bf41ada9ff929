#ifndef CALLGRIND_CONTROL_H
#define CALLGRIND_CONTROL_H

/// Sets callgrind's counts to zero (a no-op outside valgrind): the harness calls it once its
/// input is made, so that only the work after it is counted.
void callgrind_count_from_here(void);

/// Stops callgrind's counting (a no-op outside valgrind; counting must be on): the harness calls
/// it once the measured work is done, so that freeing its input is not counted (the input is
/// made before counting starts and is the caller's, as the ideal log's packed input is).
void callgrind_count_until_here(void);

#endif
