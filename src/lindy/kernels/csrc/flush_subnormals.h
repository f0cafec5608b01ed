// Subnormal floats flushed to zero on the calling thread for one scope (FTZ and DAZ on x86; elsewhere a no-op).
//
// Why: a gradient that enters a recurrence at one late step (a classifier reading the last state) decays
// geometrically as it runs back in time and, over a long sequence, underflows through the subnormal range,
// where x86 cores handle every operand in microcode. Measured: the backward of LEM(128) at L = 2000, batch 32,
// loss on the last step only, 1.9 s with subnormals against 0.12 s flushed; with the loss on every step, 0.14 s
// either way. A value below 1.2e-38 (2.2e-308 in float64) is zero to any precision a gradient is read at, and
// the flush only touches those. The guard restores the thread's mode, so nothing leaks into other code.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace lindy {

class FlushSubnormals {
 public:
#if defined(__x86_64__) || defined(__i386__)
  FlushSubnormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtz | kDaz); }
  ~FlushSubnormals() { _mm_setcsr(saved_); }

 private:
  static constexpr unsigned kFtz = 0x8000;  // results that would be subnormal become zero
  static constexpr unsigned kDaz = 0x0040;  // subnormal inputs are read as zero
  unsigned saved_;
#else
  FlushSubnormals() = default;
#endif
  FlushSubnormals(const FlushSubnormals&) = delete;
  FlushSubnormals& operator=(const FlushSubnormals&) = delete;
};

}  // namespace lindy
