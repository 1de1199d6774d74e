// Run-time ISA dispatch: fills one KernelTable per ISA built, picks the newest usable one.
#include "dispatch.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define PCN_DECLARE(name, params) void name params;
#define PCN_ROW_reference(name, params) &reference::name,
#define PCN_ROW_generic(name, params) &generic::name,
#define PCN_ROW_avx2(name, params) &avx2::name,
#define PCN_ROW_avx512(name, params) &avx512::name,
#define PCN_ROW_avx512bf16(name, params) &avx512bf16::name,
#define PCN_ROW_amx(name, params) &amx::name,

namespace pcn {
namespace reference { PCN_KERNEL_LIST(PCN_DECLARE) }
namespace generic { PCN_KERNEL_LIST(PCN_DECLARE) }
#ifdef PCN_HAVE_avx2
namespace avx2 { PCN_KERNEL_LIST(PCN_DECLARE) }
#endif
#ifdef PCN_HAVE_avx512
namespace avx512 { PCN_KERNEL_LIST(PCN_DECLARE) }
#endif
#ifdef PCN_HAVE_avx512bf16
namespace avx512bf16 { PCN_KERNEL_LIST(PCN_DECLARE) }
#endif
#ifdef PCN_HAVE_amx
namespace amx { PCN_KERNEL_LIST(PCN_DECLARE) }
#endif

namespace {

constexpr Isa kAllIsas[] = {Isa::reference, Isa::generic, Isa::avx2, Isa::avx512, Isa::avx512bf16, Isa::amx};

const KernelTable kReferenceRow = {PCN_KERNEL_LIST(PCN_ROW_reference)};
const KernelTable kGenericRow = {PCN_KERNEL_LIST(PCN_ROW_generic)};
#ifdef PCN_HAVE_avx2
const KernelTable kAvx2Row = {PCN_KERNEL_LIST(PCN_ROW_avx2)};
#endif
#ifdef PCN_HAVE_avx512
const KernelTable kAvx512Row = {PCN_KERNEL_LIST(PCN_ROW_avx512)};
#endif
#ifdef PCN_HAVE_avx512bf16
const KernelTable kAvx512Bf16Row = {PCN_KERNEL_LIST(PCN_ROW_avx512bf16)};
#endif
#ifdef PCN_HAVE_amx
const KernelTable kAmxRow = {PCN_KERNEL_LIST(PCN_ROW_amx)};
#endif

const KernelTable* row_of(Isa isa) {
  switch (isa) {
    case Isa::reference: return &kReferenceRow;
    case Isa::generic: return &kGenericRow;
#ifdef PCN_HAVE_avx2
    case Isa::avx2: return &kAvx2Row;
#endif
#ifdef PCN_HAVE_avx512
    case Isa::avx512: return &kAvx512Row;
#endif
#ifdef PCN_HAVE_avx512bf16
    case Isa::avx512bf16: return &kAvx512Bf16Row;
#endif
#ifdef PCN_HAVE_amx
    case Isa::amx: return &kAmxRow;
#endif
    default: return nullptr;
  }
}

// AMX-TILE and AMX-BF16 (CPUID leaf 7), tile state saved by the OS (XCR0 bits 17 and 18), and
// Linux's permission to use the tile data, which a process must ask for once before its first tile
// instruction (any thread; it then holds for all of them). Asked for once, on the first call; only
// called where AVX-512 is usable, so XGETBV is.
bool amx_usable() {
#if defined(__x86_64__) && defined(__linux__)
  static const bool usable = [] {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    const bool amx_bf16 = (edx >> 22) & 1u, amx_tile = (edx >> 24) & 1u;
    if (!amx_bf16 || !amx_tile) return false;
    unsigned xcr0_low, xcr0_high;
    __asm__ volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    if (((xcr0_low >> 17) & 3u) != 3u) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return usable;
#else
  return false;
#endif
}

// __builtin_cpu_supports also checks (via XGETBV) that the OS saves the YMM/ZMM state.
bool cpu_supports(Isa isa) {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512bf16: return cpu_supports(Isa::avx512) && __builtin_cpu_supports("avx512bf16");
    case Isa::amx: return cpu_supports(Isa::avx512bf16) && amx_usable();
    default: return true;
  }
#else
  return isa == Isa::reference || isa == Isa::generic;
#endif
}

struct Choice {
  Isa isa;
  std::string reason;
};

Choice choose_at_import() {
  Isa best = Isa::generic;
  for (Isa isa : {Isa::amx, Isa::avx512bf16, Isa::avx512, Isa::avx2}) {
    if (isa_available(isa)) {
      best = isa;
      break;
    }
  }
  std::string reason = "newest ISA that is both built and supported by this CPU";
  if (best == Isa::avx512bf16 && row_of(Isa::amx)) reason += " (CPU or OS lacks AMX-BF16 tiles)";
  if (best == Isa::avx512 && row_of(Isa::avx512bf16)) reason += " (CPU lacks AVX512-BF16)";
  if (best != Isa::avx512 && row_of(Isa::avx512) && !cpu_supports(Isa::avx512))
    reason += " (CPU lacks AVX-512 F/BW/VL/DQ)";
  if (best == Isa::generic && row_of(Isa::avx2) && !cpu_supports(Isa::avx2)) reason += " (CPU lacks AVX2+FMA)";
  if (const char* env = std::getenv("PYCONVNET_ISA"); env && *env) {
    std::string requested(env);
    try {
      Isa isa = isa_from_name(requested);
      if (!isa_available(isa)) {
        reason = "PYCONVNET_ISA=" + requested + " is not available here; using " + isa_name(best) + ", " + reason;
      } else {
        return {isa, "forced by PYCONVNET_ISA=" + requested};
      }
    } catch (const std::invalid_argument&) {
      reason = "PYCONVNET_ISA=" + requested + " is not an ISA name; using " + isa_name(best) + ", " + reason;
    }
  }
  return {best, reason};
}

const Choice& import_choice() {
  static const Choice choice = choose_at_import();
  return choice;
}

std::atomic<const KernelTable*> g_row{nullptr};
std::atomic<Isa> g_isa{Isa::generic};

void ensure_initialised() {
  if (!g_row.load(std::memory_order_acquire)) {
    g_isa.store(import_choice().isa);
    g_row.store(row_of(import_choice().isa), std::memory_order_release);
  }
}

}  // namespace

const KernelTable& kernels() {
  ensure_initialised();
  return *g_row.load(std::memory_order_acquire);
}

Isa current_isa() {
  ensure_initialised();
  return g_isa.load();
}

std::string isa_name(Isa isa) {
  switch (isa) {
    case Isa::reference: return "reference";
    case Isa::generic: return "generic";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::avx512bf16: return "avx512bf16";
    case Isa::amx: return "amx";
  }
  return "unknown";
}

Isa isa_from_name(const std::string& name) {
  for (Isa isa : kAllIsas)
    if (isa_name(isa) == name) return isa;
  throw std::invalid_argument("unknown ISA '" + name +
                              "' (expected one of: reference, generic, avx2, avx512, avx512bf16, amx)");
}

bool isa_available(Isa isa) { return row_of(isa) != nullptr && cpu_supports(isa); }

std::vector<Isa> available_isas() {
  std::vector<Isa> isas;
  for (Isa isa : kAllIsas)
    if (isa_available(isa)) isas.push_back(isa);
  return isas;
}

namespace {

void expect_available(Isa isa) {
  if (!isa_available(isa)) {
    std::string reason = row_of(isa) ? "this CPU does not support it" : "this build does not include it";
    throw std::invalid_argument("ISA '" + isa_name(isa) + "' is not available: " + reason);
  }
}

}  // namespace

const KernelTable& kernels_for(Isa isa) {
  expect_available(isa);
  return *row_of(isa);
}

void set_isa(Isa isa) {
  expect_available(isa);
  ensure_initialised();
  g_isa.store(isa);
  g_row.store(row_of(isa), std::memory_order_release);
}

std::string isa_choice_reason() { return import_choice().reason; }

std::string isa_flags(Isa isa) {
  switch (isa) {
    case Isa::reference: return "(plain loops, base flags)";
    case Isa::generic: return "(base flags)";
#ifdef PCN_HAVE_avx2
    case Isa::avx2: return PCN_FLAGS_avx2;
#endif
#ifdef PCN_HAVE_avx512
    case Isa::avx512: return PCN_FLAGS_avx512;
#endif
#ifdef PCN_HAVE_avx512bf16
    case Isa::avx512bf16: return PCN_FLAGS_avx512bf16;
#endif
#ifdef PCN_HAVE_amx
    case Isa::amx: return PCN_FLAGS_amx;
#endif
    default: return "(not built)";
  }
}

}  // namespace pcn
