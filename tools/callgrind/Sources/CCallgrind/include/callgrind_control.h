#ifndef CALLGRIND_CONTROL_H
#define CALLGRIND_CONTROL_H

/// Sets callgrind's counts to zero (a no-op outside valgrind): the harness calls it once its
/// input is made, so that only the work after it is counted.
void callgrind_count_from_here(void);

#endif
