// Vector types for lindy's CPU loops: GCC/Clang vector extensions, which the compiler lowers to the
// instructions of the calling function's target (AVX-512, AVX2 or SSE2: each loop has one entry point per
// target). Under-aligned (to the element) and may_alias, so that a pointer anywhere in a row can be read as
// vectors. Simd<T, Bytes>::V is the vector, N its element count.
#pragma once

namespace lindy {

template <typename T, int Bytes>
struct Simd;
#define LINDY_SIMD(T, BYTES)                                                         \
  template <>                                                                        \
  struct Simd<T, BYTES> {                                                            \
    typedef T V __attribute__((vector_size(BYTES), aligned(sizeof(T)), may_alias)); \
    static constexpr int N = BYTES / sizeof(T);                                      \
  };
LINDY_SIMD(float, 64)
LINDY_SIMD(float, 32)
LINDY_SIMD(float, 16)
LINDY_SIMD(double, 64)
LINDY_SIMD(double, 32)
LINDY_SIMD(double, 16)
#undef LINDY_SIMD

}  // namespace lindy
