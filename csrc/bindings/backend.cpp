// Bindings for ISA dispatch, thread control and build information.
#include <omp.h>

#include "bindings/common.h"
#include "core/buffer_cache.h"
#include "core/runtime.h"
#include "dispatch.h"

namespace pcn::bind {

void bind_backend(py::module_& m) {
  m.def("isa", [] { return isa_name(current_isa()); });
  m.def("set_isa", [](const std::string& name) { set_isa(isa_from_name(name)); }, py::arg("name"));
  m.def("available_isas", [] {
    std::vector<std::string> names;
    for (Isa isa : available_isas()) names.push_back(isa_name(isa));
    return names;
  });
  m.def("isa_choice_reason", &isa_choice_reason);
  m.def("isa_flags", [](const std::string& name) { return isa_flags(isa_from_name(name)); }, py::arg("name"));
  m.def("get_num_threads", &configured_threads);
  m.def("threads_in_use", &num_threads);
  m.def("adaptive_threads", &adaptive_threads_enabled);
  m.def("set_adaptive_threads", &set_adaptive_threads, py::arg("enabled"));
  m.def("cpu_share", [] {
    const CpuShare share = last_cpu_share();
    py::dict out;
    out["others_cpus"] = share.others_cpus;
    out["cpus"] = share.cpus;
    return out;
  });
  m.def("_cpus_taken_by_others", &cpus_taken_by_others, py::arg("taken"), py::arg("others_cpus"));
  m.def(
      "set_num_threads",
      [](int threads) {
        if (threads < 1) throw py::value_error("set_num_threads: threads must be >= 1, got " + std::to_string(threads));
        set_num_threads(threads);
      },
      py::arg("threads"));
  m.def("winograd_enabled", &winograd_enabled);
  m.def("set_winograd", &set_winograd_enabled, py::arg("enabled"));
  m.def("buffer_cache_stats", [] {
    const BufferCacheStats stats = buffer_cache_stats();
    py::dict out;
    out["cached_bytes"] = stats.cached_bytes;
    out["limit_bytes"] = stats.limit_bytes;
    out["hits"] = stats.hits;
    out["misses"] = stats.misses;
    out["recycled_bytes"] = stats.recycled_bytes;
    out["live_bytes"] = stats.live_bytes;
    return out;
  });
  m.def("empty_buffer_cache", &empty_buffer_cache);
  py::dict build;
  build["version"] = PCN_VERSION;
  build["compiler"] = PCN_COMPILER;
  build["flags"] = PCN_BUILD_FLAGS;
  build["openmp"] = _OPENMP;
  m.attr("build_info") = build;
}

}  // namespace pcn::bind
