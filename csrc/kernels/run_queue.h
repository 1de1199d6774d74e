// A shared counter that hands a team's threads runs of work as they ask for them.
#pragma once
#include <cstdint>

#include "core/isa_namespace.h"
#include "core/simd.h"

PCN_ISA_BEGIN

// Runs of [0, total) handed out in order as the team's threads ask for them, guided: each run is
// the remainder over twice the team, at least `least`, so that most items go in a few long runs
// (each thread's data stay together) and the last ones in short runs that even out the end. For
// passes whose results do not depend on which thread computes each item: a thread the machine
// slows (another process, the hypervisor) then takes fewer items instead of keeping the team
// waiting at the end. GCC's atomic builtins rather than std::atomic: no template instances shared
// between the ISAs' builds (Note [ISA namespaces]).
class RunQueue {
 public:
  // Before the team takes runs.
  void reset(int64_t total, int64_t least, int threads) {
    total_ = total, least_ = max64(1, least), threads_ = threads;
    __atomic_store_n(&next_, 0, __ATOMIC_RELAXED);
  }
  // The next run [begin, end), or false when none is left.
  bool next(int64_t* begin, int64_t* end) {
    int64_t first = __atomic_load_n(&next_, __ATOMIC_RELAXED);
    while (first < total_) {
      const int64_t size = max64(least_, (total_ - first) / (2 * threads_));
      if (__atomic_compare_exchange_n(&next_, &first, first + size, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        *begin = first;
        *end = min64(total_, first + size);
        return true;
      }
    }
    return false;
  }

 private:
  int64_t total_ = 0, least_ = 1;
  int threads_ = 1;
  int64_t next_ = 0;
};

PCN_ISA_END
