// The kernel table: one row of function pointers per ISA, generated from PCN_KERNEL_LIST, and the
// choice of the row at import (newest ISA the CPU and OS support, unless PYCONVNET_ISA says
// otherwise). "reference" is the plain-loop row from csrc/ref/: never chosen automatically, it
// is there for tests and debugging.
#pragma once
#include <string>
#include <vector>

#include "kernels/kernel_list.h"

namespace pcn {

struct KernelTable {
#define PCN_TABLE_ENTRY(name, params) void(*name) params;
  PCN_KERNEL_LIST(PCN_TABLE_ENTRY)
#undef PCN_TABLE_ENTRY
};

enum class Isa { reference = 0, generic, avx2, avx512, avx512bf16, amx };

// The row in use. Reading it is lock-free; set_isa() swaps it atomically.
const KernelTable& kernels();

// The row of one ISA, whichever is in use: measured selection times each available one. Throws
// std::invalid_argument if the ISA is not available.
const KernelTable& kernels_for(Isa isa);

Isa current_isa();
std::string isa_name(Isa isa);
// Throws std::invalid_argument for unknown names.
Isa isa_from_name(const std::string& name);
// Compiled into this build and runnable on this CPU (reference and generic always are).
bool isa_available(Isa isa);
std::vector<Isa> available_isas();
// Throws std::invalid_argument if the ISA is not available.
void set_isa(Isa isa);
// Why the ISA in use at import was chosen (environment override, CPU features, build).
std::string isa_choice_reason();
// Per-ISA compiler flags, for `pyconvnet info`.
std::string isa_flags(Isa isa);

}  // namespace pcn
