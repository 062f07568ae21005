#pragma once
#include <immintrin.h>
#include <cstdint>
struct __half {
  uint16_t x;
  operator float() const { return _cvtsh_ss(x); }
};
inline float __half2float(__half h) { return _cvtsh_ss(h.x); }
inline __half __float2half_rn(float f) { return __half{static_cast<uint16_t>(_cvtss_sh(f, 0))}; }
