// Note [ISA namespaces]
// Every file in csrc/kernels/ is compiled once per ISA (generic, avx2, avx512, avx512bf16, amx) with PCN_ISA set to
// the ISA's name. All of its definitions sit inside PCN_ISA_BEGIN/PCN_ISA_END, i.e. namespace
// pcn::<isa>, so each ISA gets its own symbols. This matters for anything the compiler may emit
// out of line as a weak (COMDAT) symbol: inline functions, templates, class member functions.
// If such a symbol were shared between ISAs the linker would keep one copy at random, and the
// generic path could end up executing AVX-512 code. Hence, in kernel sources:
//   - no inline helpers or templates outside the ISA namespace,
//   - no std containers or algorithms (their instantiations are shared COMDATs); use the
//     non-inline services of csrc/core (workspace, checks) and the helpers in simd.h.
#pragma once

#ifndef PCN_ISA
#error "kernel sources must be compiled with PCN_ISA defined (see CMakeLists.txt)"
#endif

#define PCN_ISA_BEGIN \
  namespace pcn {     \
  namespace PCN_ISA {
#define PCN_ISA_END \
  }                 \
  }
