// Note [module-local exception translation]: each of pyconvnet's extension modules turns its own C++
// exceptions into Python ones with a translator registered for that module alone, which pybind11 tries
// before the global chain (shared with every other pybind11 module of the same ABI in the process).
// Seen on the H200 machine: once the CUDA driver was loaded, every pybind11::value_error raised by
// either module crashed the interpreter inside pybind11's default translator, while std exceptions
// (no dynamic_cast on that path) did not. This translator needs no dynamic_cast, and both modules are
// linked with -z now (CMakeLists.txt) so no library loaded later can interpose on what they call here.
// (The fix is unconfirmed on a GPU at the time of writing: the cause was inferred, not observed.)
#pragma once
#include <pybind11/pybind11.h>

#include <exception>
#include <new>
#include <stdexcept>

namespace pcn::bind {

inline void translate_exceptions_locally() {
  pybind11::register_local_exception_translator([](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const pybind11::builtin_exception& e) {
      e.set_error();
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, "out of memory");
    } catch (const std::out_of_range& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const std::overflow_error& e) {
      PyErr_SetString(PyExc_OverflowError, e.what());
    } catch (const std::logic_error& e) {  // invalid_argument, domain_error, length_error
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const std::range_error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
    // Anything else (pybind11's own error_already_set, other runtime errors) goes on to pybind11's
    // default translation.
  });
}

}  // namespace pcn::bind
