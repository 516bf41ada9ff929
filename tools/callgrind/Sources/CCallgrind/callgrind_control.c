#include "callgrind_control.h"
#include <valgrind/callgrind.h>

void callgrind_count_from_here(void) { CALLGRIND_ZERO_STATS; }

void callgrind_count_until_here(void) { CALLGRIND_TOGGLE_COLLECT; }
