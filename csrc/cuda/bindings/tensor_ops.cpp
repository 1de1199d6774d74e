// Bindings of the GPU array primitives (pyconvnet._C_cuda) behind the CudaArray facade: argument
// checks (TypeError for dtypes, ValueError for shapes and arguments, naming the op), numpy's
// broadcasting and result dtypes, output allocation, and asynchronous launches (kernels and
// contracts in cuda/tensor_ops.cuh). Launchers that allocate temporaries (reduce, sort, nonzero) run
// with the GIL held, since the caching allocator is used under the GIL.
#include <Python.h>

#include <algorithm>
#include <string>
#include <utility>

#include "cuda/bindings/common.h"
#include "cuda/tensor_ops.cuh"

namespace pcn::cuda::bind {
namespace {

using Shape = std::vector<int64_t>;

std::string shape_of(const DeviceArray& a) { return shape_str(a.shape); }

Dtype compute_of(Dtype dtype) { return dtype == Dtype::float32 ? Dtype::float32 : Dtype::int64; }

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
  return strides;
}

void check_shape(const char* op, const Shape& shape) {
  for (int64_t size : shape)
    if (size < 0)
      throw py::value_error(std::string(op) + ": shape must not have negative sizes, got " + shape_str(shape));
  checked_numel(shape, op);
}

int64_t product(const Shape& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t d = begin; d < end; ++d) p *= shape[d];
  return p;
}

// An axis argument in [0, ndim).
void check_axis(const char* op, int64_t axis, const DeviceArray& a) {
  if (axis < 0 || axis >= a.ndim())
    throw py::value_error(std::string(op) + ": axis " + std::to_string(axis) +
                          " is out of range for an array of shape " + shape_of(a));
}

void check_ndim_limit(const char* op, const DeviceArray& a) {
  if (a.ndim() > kMaxDims)
    throw py::value_error(std::string(op) + ": at most " + std::to_string(kMaxDims) +
                          " dimensions are supported, got shape " + shape_of(a));
}

// ---- Python scalars (weakly typed: their kind, not a width) ----

struct Scalar {
  Dtype dtype;  // bool_, int64 or float32 (a Python bool, int or float)
  double f;
  int64_t i;
};

Scalar scalar_from(const py::handle& value, const char* op, const char* name) {
  PyObject* object = value.ptr();
  if (PyBool_Check(object)) {
    const bool b = object == Py_True;
    return {Dtype::bool_, b ? 1.0 : 0.0, b ? 1 : 0};
  }
  if (PyLong_Check(object)) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(object, &overflow);
    if (overflow != 0)
      throw py::value_error(std::string(op) + ": " + name + " " + std::string(py::str(value)) +
                            " does not fit in int64");
    return {Dtype::int64, double(v), int64_t(v)};
  }
  if (PyFloat_Check(object)) return {Dtype::float32, PyFloat_AsDouble(object), 0};
  throw py::type_error(std::string(op) + ": " + name + " must be a Python bool, int or float, got " +
                       std::string(py::str(py::type::handle_of(value).attr("__name__"))));
}

// ---- elementwise launches ----

struct Operand {
  void* data = nullptr;
  Dtype dtype = Dtype::float32;
  Shape strides;  // one per dimension of the launch shape
  double constant_f = 0;
  int64_t constant_i = 0;
};

// `a` broadcast to `shape` (right-aligned; stride 0 where a has size 1 or no dimension).
Operand broadcast_operand(const DeviceArray& a, const Shape& shape) {
  Operand o{a.raw(), a.dtype, Shape(shape.size(), 0)};
  const Shape strides = contiguous_strides(a.shape);
  const size_t lead = shape.size() - a.shape.size();
  for (size_t d = 0; d < a.shape.size(); ++d)
    if (a.shape[d] != 1) o.strides[lead + d] = strides[d];
  return o;
}

Operand scalar_operand(const Scalar& s, size_t ndim) {
  Operand o;
  o.dtype = s.dtype;
  o.strides.assign(ndim, 0);
  o.constant_f = s.f;
  o.constant_i = s.i;
  return o;
}

// numpy's broadcast of the shapes, or a ValueError showing them all.
Shape broadcast_shapes(const char* op, const std::vector<Shape>& shapes) {
  size_t ndim = 0;
  for (const Shape& s : shapes) ndim = std::max(ndim, s.size());
  Shape result(ndim, 1);
  for (const Shape& s : shapes) {
    const size_t lead = ndim - s.size();
    for (size_t d = 0; d < s.size(); ++d) {
      int64_t& r = result[lead + d];
      if (s[d] == r || s[d] == 1) continue;
      if (r != 1) {
        std::string message = std::string(op) + ": operands could not be broadcast together with shapes";
        for (const Shape& t : shapes) message += " " + shape_str(t);
        throw py::value_error(message);
      }
      r = s[d];
    }
  }
  return result;
}

// Drops size-1 dimensions, merges dimensions contiguous in every operand, and launches out =
// op(inputs) over `shape` (nothing for an empty shape).
void run_elementwise(const char* op, EwOp code, Dtype compute, const Shape& shape, const Operand& out,
                     const std::vector<Operand>& inputs, cudaStream_t stream) {
  std::vector<const Operand*> operands{&out};
  for (const Operand& in : inputs) operands.push_back(&in);
  Shape dims;
  std::vector<Shape> strides(operands.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return;
    if (shape[d] == 1) continue;
    bool merge = !dims.empty();
    for (size_t k = 0; k < operands.size() && merge; ++k)
      merge = strides[k].back() == operands[k]->strides[d] * shape[d];
    if (merge) {
      dims.back() *= shape[d];
      for (size_t k = 0; k < operands.size(); ++k) strides[k].back() = operands[k]->strides[d];
    } else {
      dims.push_back(shape[d]);
      for (size_t k = 0; k < operands.size(); ++k) strides[k].push_back(operands[k]->strides[d]);
    }
  }
  if (dims.size() > size_t(kMaxDims))
    throw py::value_error(std::string(op) + ": shape " + shape_str(shape) + " keeps " + std::to_string(dims.size()) +
                          " dimensions after merging contiguous ones; at most " + std::to_string(kMaxDims) +
                          " are supported");
  EwLaunch launch;
  launch.op = code;
  launch.ndim = static_cast<int32_t>(dims.size());
  launch.numel = 1;
  for (size_t d = 0; d < dims.size(); ++d) {
    launch.shape[d] = dims[d];
    launch.numel *= dims[d];
  }
  EwOperand* targets[1 + kMaxInputs] = {&launch.out, &launch.in[0], &launch.in[1], &launch.in[2]};
  for (size_t k = 0; k < operands.size(); ++k) {
    targets[k]->data = operands[k]->data;
    targets[k]->dtype = operands[k]->dtype;
    targets[k]->constant_f = operands[k]->constant_f;
    targets[k]->constant_i = operands[k]->constant_i;
    std::copy(strides[k].begin(), strides[k].end(), targets[k]->strides);
  }
  py::gil_scoped_release nogil;
  elementwise(launch, compute, stream);
}

Operand contiguous_operand(const DeviceArray& a) { return {a.raw(), a.dtype, contiguous_strides(a.shape)}; }

// A new array of x's values converted to `dtype`.
DeviceArray cast_to(const DeviceArray& x, Dtype dtype) {
  DeviceArray out = empty(x.shape, dtype, x.device);
  run_elementwise("cast", EwOp::copy, compute_of(x.dtype), x.shape, contiguous_operand(out), {contiguous_operand(x)},
                  launch_on(x));
  return out;
}

// `src` itself, or a private copy when it shares storage with `dst` (an in-place write into dst
// must not race with reads of src).
DeviceArray detached(const DeviceArray& src, const DeviceArray& dst) {
  return src.storage == dst.storage ? cast_to(src, src.dtype) : src;
}

// x's elements with axes reordered by `order` (a permutation), as a new contiguous array.
DeviceArray permuted(const DeviceArray& x, const std::vector<size_t>& order) {
  const Shape strides = contiguous_strides(x.shape);
  Shape shape;
  Operand in{x.raw(), x.dtype, {}};
  for (size_t d : order) {
    shape.push_back(x.shape[d]);
    in.strides.push_back(strides[d]);
  }
  DeviceArray out = empty(shape, x.dtype, x.device);
  run_elementwise("permute", EwOp::copy, compute_of(x.dtype), shape, contiguous_operand(out), {in}, launch_on(x));
  return out;
}

// Whether moving `moved` axes to the end (keeping both groups' order) changes the memory order:
// only when a moved axis of size > 1 precedes a kept axis of size > 1.
bool needs_permute(const Shape& shape, const std::vector<bool>& moved) {
  bool seen_moved = false;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (moved[d]) seen_moved = true;
    else if (seen_moved) return true;
  }
  return false;
}

// x with the `moved` axes last (a copy only when the memory order changes).
DeviceArray moved_last(const DeviceArray& x, const std::vector<bool>& moved) {
  if (!needs_permute(x.shape, moved)) return x;
  std::vector<size_t> order;
  for (size_t d = 0; d < moved.size(); ++d)
    if (!moved[d]) order.push_back(d);
  for (size_t d = 0; d < moved.size(); ++d)
    if (moved[d]) order.push_back(d);
  return permuted(x, order);
}

// ---- op tables and result dtypes ----

enum class Kind { same_or_int, float_only, predicate, arith, float_binary, compare, logical, bitwise };

struct OpInfo {
  const char* name;
  EwOp code;
  Kind kind;
};

constexpr OpInfo kUnaryOps[] = {
    {"neg", EwOp::neg, Kind::same_or_int},           {"abs", EwOp::abs, Kind::same_or_int},
    {"sign", EwOp::sign, Kind::same_or_int},         {"square", EwOp::square, Kind::same_or_int},
    {"exp", EwOp::exp, Kind::float_only},            {"log", EwOp::log, Kind::float_only},
    {"sqrt", EwOp::sqrt, Kind::float_only},          {"reciprocal", EwOp::reciprocal, Kind::float_only},
    {"tanh", EwOp::tanh, Kind::float_only},          {"sigmoid", EwOp::sigmoid, Kind::float_only},
    {"floor", EwOp::floor, Kind::float_only},        {"ceil", EwOp::ceil, Kind::float_only},
    {"round", EwOp::round, Kind::float_only},        {"trunc", EwOp::trunc, Kind::float_only},
    {"sin", EwOp::sin, Kind::float_only},            {"cos", EwOp::cos, Kind::float_only},
    {"log1p", EwOp::log1p, Kind::float_only},        {"expm1", EwOp::expm1, Kind::float_only},
    {"erf", EwOp::erf, Kind::float_only},            {"logical_not", EwOp::logical_not, Kind::predicate},
    {"isnan", EwOp::isnan, Kind::predicate},         {"isinf", EwOp::isinf, Kind::predicate},
    {"isfinite", EwOp::isfinite, Kind::predicate},   {"signbit", EwOp::signbit, Kind::predicate},
};

constexpr OpInfo kBinaryOps[] = {
    {"add", EwOp::add, Kind::arith},
    {"sub", EwOp::sub, Kind::arith},
    {"mul", EwOp::mul, Kind::arith},
    {"div", EwOp::div, Kind::float_binary},
    {"floordiv", EwOp::floordiv, Kind::arith},
    {"mod", EwOp::mod, Kind::arith},
    {"pow", EwOp::pow, Kind::arith},
    {"maximum", EwOp::maximum, Kind::arith},
    {"minimum", EwOp::minimum, Kind::arith},
    {"eq", EwOp::eq, Kind::compare},
    {"ne", EwOp::ne, Kind::compare},
    {"lt", EwOp::lt, Kind::compare},
    {"le", EwOp::le, Kind::compare},
    {"gt", EwOp::gt, Kind::compare},
    {"ge", EwOp::ge, Kind::compare},
    {"logical_and", EwOp::logical_and, Kind::logical},
    {"logical_or", EwOp::logical_or, Kind::logical},
    {"logical_xor", EwOp::logical_xor, Kind::logical},
    {"bitwise_and", EwOp::bitwise_and, Kind::bitwise},
    {"bitwise_or", EwOp::bitwise_or, Kind::bitwise},
    {"bitwise_xor", EwOp::bitwise_xor, Kind::bitwise},
    {"atan2", EwOp::atan2, Kind::float_binary},
    {"copysign", EwOp::copysign, Kind::float_binary},
};

template <size_t N>
const OpInfo& find_op(const OpInfo (&table)[N], const std::string& name, const char* op) {
  for (const OpInfo& info : table)
    if (name == info.name) return info;
  std::string known;
  for (const OpInfo& info : table) known += std::string(known.empty() ? "" : ", ") + info.name;
  throw py::value_error(std::string(op) + ": unknown op '" + name + "' (expected one of " + known + ")");
}

struct Plan {
  Dtype out;
  Dtype compute;
};

Plan unary_plan(const OpInfo& info, Dtype x) {
  switch (info.kind) {
    case Kind::same_or_int: return {compute_of(x), compute_of(x)};
    case Kind::predicate: return {Dtype::bool_, compute_of(x)};
    default: return {Dtype::float32, Dtype::float32};  // float_only
  }
}

// The result dtype of a binary op (float32 if either operand is float32, else int64; bool op bool
// stays bool where numpy keeps it), and the type it computes in.
Plan binary_plan(const char* op, const OpInfo& info, Dtype a, Dtype b) {
  const bool any_float = a == Dtype::float32 || b == Dtype::float32;
  const bool both_bool = a == Dtype::bool_ && b == Dtype::bool_;
  const Dtype compute = any_float ? Dtype::float32 : Dtype::int64;
  switch (info.kind) {
    case Kind::float_binary: return {Dtype::float32, Dtype::float32};
    case Kind::compare:
    case Kind::logical: return {Dtype::bool_, compute};
    case Kind::bitwise:
      if (any_float)
        throw py::type_error(std::string(op) + ": " + info.name + " needs integer or bool operands, got " +
                             dtype_name(a) + " and " + dtype_name(b));
      return {both_bool ? Dtype::bool_ : Dtype::int64, Dtype::int64};
    default: {  // arith
      if (any_float) return {Dtype::float32, Dtype::float32};
      if (!both_bool) return {Dtype::int64, Dtype::int64};
      const EwOp c = info.code;
      if (c == EwOp::sub)
        throw py::type_error(std::string(op) + ": sub of two bool operands is not supported (numpy neither); use "
                                               "logical_xor");
      const bool stays_bool = c == EwOp::add || c == EwOp::mul || c == EwOp::maximum || c == EwOp::minimum;
      return {stays_bool ? Dtype::bool_ : Dtype::int64, Dtype::int64};
    }
  }
}

// ---- strided views: bounds of the elements they reach ----

// ValueError unless every element offset + sum(i_j * strides[j]) lies in [0, numel).
void check_reach(const char* op, const char* name, const Shape& shape, const Shape& strides, int64_t offset,
                 int64_t numel) {
  if (shape.size() != strides.size())
    throw py::value_error(std::string(op) + ": shape " + shape_str(shape) + " and strides " + shape_str(strides) +
                          " must have the same length");
  check_shape(op, shape);
  if (product(shape, 0, shape.size()) == 0) return;
  int64_t low = offset, high = offset;
  bool overflow = false;
  for (size_t d = 0; d < shape.size(); ++d) {
    int64_t extent = 0;
    overflow |= __builtin_mul_overflow(strides[d], shape[d] - 1, &extent);
    overflow |= __builtin_add_overflow(extent < 0 ? low : high, extent, extent < 0 ? &low : &high);
  }
  if (overflow || low < 0 || high >= numel)
    throw py::value_error(std::string(op) + ": shape " + shape_str(shape) + ", strides " + shape_str(strides) +
                          " and offset " + std::to_string(offset) + " reach outside " + name + " (" +
                          std::to_string(numel) + " elements)");
}

void* element_pointer(const DeviceArray& a, int64_t offset) {
  return static_cast<char*>(a.raw()) + offset * itemsize(a.dtype);
}

// ---- reductions ----

struct ReduceInfo {
  const char* name;
  ReduceOp op;
};
constexpr ReduceInfo kReduceOps[] = {{"sum", ReduceOp::sum}, {"prod", ReduceOp::prod}, {"max", ReduceOp::max},
                                     {"min", ReduceOp::min}, {"any", ReduceOp::any},   {"all", ReduceOp::all},
                                     {"mean", ReduceOp::mean}};

ReduceOp reduce_op(const std::string& name) {
  for (const ReduceInfo& info : kReduceOps)
    if (name == info.name) return info.op;
  throw py::value_error("reduce: unknown op '" + name + "' (expected one of sum, prod, max, min, any, all, mean)");
}

DeviceArray reduce(const std::string& name, const DeviceArray& x, const Shape& axes, bool keepdims) {
  const ReduceOp op = reduce_op(name);
  std::vector<bool> reduced(x.shape.size(), false);
  for (int64_t axis : axes) {
    check_axis("reduce", axis, x);
    if (reduced[axis])
      throw py::value_error("reduce: axis " + std::to_string(axis) + " is repeated in " + shape_str(axes));
    reduced[axis] = true;
  }
  Dtype out_dtype = compute_of(x.dtype), compute = compute_of(x.dtype);
  if (op == ReduceOp::mean) out_dtype = compute = Dtype::float32;
  if (op == ReduceOp::max || op == ReduceOp::min) out_dtype = x.dtype;
  if (op == ReduceOp::any || op == ReduceOp::all) out_dtype = Dtype::bool_;
  Shape out_shape, kept_shape, reduced_shape;
  for (size_t d = 0; d < x.shape.size(); ++d) {
    (reduced[d] ? reduced_shape : kept_shape).push_back(x.shape[d]);
    if (!reduced[d]) out_shape.push_back(x.shape[d]);
    else if (keepdims) out_shape.push_back(1);
  }
  const int64_t row_len = product(reduced_shape, 0, reduced_shape.size());
  if (row_len == 0 && (op == ReduceOp::max || op == ReduceOp::min))
    throw py::value_error("zero-size array to reduction operation " + name + " which has no identity");
  DeviceArray out = empty(out_shape, out_dtype, x.device);
  if (axes.empty()) {  // nothing to reduce: the values, in the result dtype
    run_elementwise("reduce", EwOp::copy, compute_of(x.dtype), x.shape, contiguous_operand(out),
                    {contiguous_operand(x)}, launch_on(x));
    return out;
  }
  const DeviceArray rows_last = moved_last(x, reduced);
  reduce_rows(out.raw(), out_dtype, rows_last.raw(), x.dtype, product(kept_shape, 0, kept_shape.size()), row_len, op,
              compute, x.device, launch_on(x));
  return out;
}

DeviceArray arg_reduce(const std::string& name, const DeviceArray& x, int64_t axis, bool keepdims) {
  if (name != "argmax" && name != "argmin")
    throw py::value_error("arg_reduce: unknown op '" + name + "' (expected argmax or argmin)");
  if (axis != -1) check_axis("arg_reduce", axis, x);
  Shape out_shape;
  int64_t rows = 1, row_len = x.numel();
  DeviceArray rows_last = x;
  if (axis == -1) {
    if (keepdims) out_shape.assign(x.shape.size(), 1);
  } else {
    row_len = x.shape[axis];
    out_shape = x.shape;
    if (keepdims) out_shape[axis] = 1;
    else out_shape.erase(out_shape.begin() + axis);
    rows = product(out_shape, 0, out_shape.size());
    std::vector<bool> moved(x.shape.size(), false);
    moved[axis] = true;
    if (row_len > 0) rows_last = moved_last(x, moved);
  }
  if (row_len == 0) throw py::value_error("attempt to get " + name + " of an empty sequence");
  DeviceArray out = empty(out_shape, Dtype::int64, x.device);
  const cudaStream_t stream = launch_on(x);
  py::gil_scoped_release nogil;
  arg_reduce_rows(out.data<int64_t>(), rows_last.raw(), x.dtype, rows, row_len, name == "argmax", stream);
  return out;
}

// ---- gathers and scatters ----

// take/put_along_axis's iteration space: `index` broadcast against `array` (x or dst) outside axis.
AlongAxis along_axis(const char* op, const DeviceArray& array, const DeviceArray& index, int64_t axis) {
  index_input(index, op, "index");
  if (index.ndim() != array.ndim())
    throw py::value_error(std::string(op) + ": index must have as many dimensions as the array, got shapes " +
                          shape_of(index) + " and " + shape_of(array));
  check_axis(op, axis, array);
  check_ndim_limit(op, array);
  AlongAxis a;
  a.ndim = array.ndim();
  a.axis = static_cast<int32_t>(axis);
  a.axis_size = array.shape[axis];
  const Shape array_strides = contiguous_strides(array.shape), index_strides = contiguous_strides(index.shape);
  a.numel = 1;
  for (int d = 0; d < a.ndim; ++d) {
    const int64_t n = array.shape[d], m = index.shape[d];
    if (d != axis && n != m && n != 1 && m != 1)
      throw py::value_error(std::string(op) + ": index of shape " + shape_of(index) + " does not broadcast against the "
                            "array of shape " + shape_of(array) + " outside axis " + std::to_string(axis));
    a.shape[d] = d == axis ? m : std::max(n, m);
    if (n == 0 || m == 0) a.shape[d] = d == axis ? m : 0;
    a.numel *= a.shape[d];
    a.index_strides[d] = m == 1 ? 0 : index_strides[d];
    a.array_strides[d] = (d != axis && n == 1) ? 0 : array_strides[d];
  }
  return a;
}

// outer = prod(shape[:axis]), inner = prod(shape[axis+1:]).
std::pair<int64_t, int64_t> outer_inner(const Shape& shape, int64_t axis) {
  return {product(shape, 0, axis), product(shape, axis + 1, shape.size())};
}

Shape index_select_shape(const DeviceArray& x, int64_t axis, const DeviceArray& index) {
  Shape shape(x.shape.begin(), x.shape.begin() + axis);
  shape.insert(shape.end(), index.shape.begin(), index.shape.end());
  shape.insert(shape.end(), x.shape.begin() + axis + 1, x.shape.end());
  return shape;
}

void check_same_dtype(const char* op, const char* a_name, const DeviceArray& a, const char* b_name,
                      const DeviceArray& b) {
  if (a.dtype != b.dtype)
    throw py::type_error(std::string(op) + ": " + a_name + " and " + b_name + " must have the same dtype, got " +
                         dtype_name(a.dtype) + " and " + dtype_name(b.dtype));
}

Shape shape_arg(const char* op, const Shape& shape) {
  check_shape(op, shape);
  return shape;
}

// (values, indices) of x sorted stably along axis.
std::pair<DeviceArray, DeviceArray> sort_along(const DeviceArray& x, int64_t axis, bool descending) {
  check_axis("sort", axis, x);
  std::vector<bool> moved(x.shape.size(), false);
  moved[axis] = true;
  const DeviceArray rows_last = moved_last(x, moved);  // x itself when axis is already innermost
  const int64_t n = x.shape[axis], rows = n == 0 ? 0 : x.numel() / n;
  DeviceArray values = empty(rows_last.shape, x.dtype, x.device);
  DeviceArray indices = empty(rows_last.shape, Dtype::int64, x.device);
  sort_rows(values.raw(), indices.data<int64_t>(), rows_last.raw(), x.dtype, rows, n, descending, x.device,
            launch_on(x));
  if (!needs_permute(x.shape, moved)) return {values, indices};
  // rows_last's axes are x's in the order (others..., axis): x's axis d is rows_last's axis d
  // before `axis`, its last one at `axis`, and d - 1 after it.
  const size_t ndim = x.shape.size();
  std::vector<size_t> back(ndim);
  for (size_t d = 0; d < ndim; ++d) back[d] = d < size_t(axis) ? d : d == size_t(axis) ? ndim - 1 : d - 1;
  return {permuted(values, back), permuted(indices, back)};
}

// The first k entries of `a` along axis, as a new array.
DeviceArray leading(const DeviceArray& a, int64_t axis, int64_t k) {
  Shape shape = a.shape;
  shape[axis] = k;
  DeviceArray out = empty(shape, a.dtype, a.device);
  const Operand in{a.raw(), a.dtype, contiguous_strides(a.shape)};
  run_elementwise("topk", EwOp::copy, compute_of(a.dtype), shape, contiguous_operand(out), {in}, launch_on(a));
  return out;
}

}  // namespace

void bind_tensor_ops(py::module_& m) {
  m.def(
      "fill",
      [](const Shape& shape, const std::string& dtype, const py::handle& value, int device) {
        const Scalar s = scalar_from(value, "fill", "value");
        DeviceArray out = empty(shape_arg("fill", shape), dtype_from_name(dtype), device);
        run_elementwise("fill", EwOp::copy, compute_of(s.dtype), shape, contiguous_operand(out),
                        {scalar_operand(s, shape.size())}, launch_on(out));
        return out;
      },
      py::arg("shape"), py::arg("dtype"), py::arg("value"), py::arg("device"));

  m.def(
      "arange",
      [](int64_t count, const py::handle& start, const py::handle& step, const std::string& dtype, int device) {
        if (count < 0) throw py::value_error("arange: count must be non-negative, got " + std::to_string(count));
        const Scalar first = scalar_from(start, "arange", "start"), delta = scalar_from(step, "arange", "step");
        DeviceArray out = empty({count}, dtype_from_name(dtype), device);
        const bool integer_steps = first.dtype != Dtype::float32 && delta.dtype != Dtype::float32;
        const cudaStream_t stream = launch_on(out);
        py::gil_scoped_release nogil;
        arange(out.raw(), out.dtype, count, integer_steps, first.i, delta.i, first.f, delta.f, stream);
        return out;
      },
      py::arg("count"), py::arg("start"), py::arg("step"), py::arg("dtype"), py::arg("device"));

  m.def(
      "unary",
      [](const std::string& op, const DeviceArray& x) {
        const OpInfo& info = find_op(kUnaryOps, op, "unary");
        const Plan plan = unary_plan(info, x.dtype);
        DeviceArray out = empty(x.shape, plan.out, x.device);
        run_elementwise("unary", info.code, plan.compute, x.shape, contiguous_operand(out), {contiguous_operand(x)},
                        launch_on(x));
        return out;
      },
      py::arg("op"), py::arg("x"));

  m.def(
      "binary",
      [](const std::string& op, const DeviceArray& a, const DeviceArray& b) {
        const OpInfo& info = find_op(kBinaryOps, op, "binary");
        expect_same_device("binary", {&a, &b});
        const Plan plan = binary_plan("binary", info, a.dtype, b.dtype);
        const Shape shape = broadcast_shapes("binary", {a.shape, b.shape});
        DeviceArray out = empty(shape, plan.out, a.device);
        run_elementwise("binary", info.code, plan.compute, shape, contiguous_operand(out),
                        {broadcast_operand(a, shape), broadcast_operand(b, shape)}, launch_on(a));
        return out;
      },
      py::arg("op"), py::arg("a"), py::arg("b"));

  m.def(
      "binary_scalar",
      [](const std::string& op, const DeviceArray& a, const py::handle& scalar, bool scalar_first) {
        const OpInfo& info = find_op(kBinaryOps, op, "binary_scalar");
        const Scalar s = scalar_from(scalar, "binary_scalar", "scalar");
        const Plan plan = scalar_first ? binary_plan("binary_scalar", info, s.dtype, a.dtype)
                                       : binary_plan("binary_scalar", info, a.dtype, s.dtype);
        DeviceArray out = empty(a.shape, plan.out, a.device);
        Operand array = contiguous_operand(a), constant = scalar_operand(s, a.shape.size());
        std::vector<Operand> inputs{array, constant};
        if (scalar_first) std::swap(inputs[0], inputs[1]);
        run_elementwise("binary_scalar", info.code, plan.compute, a.shape, contiguous_operand(out), inputs,
                        launch_on(a));
        return out;
      },
      py::arg("op"), py::arg("a"), py::arg("scalar"), py::arg("scalar_first"));

  m.def(
      "where",
      [](const DeviceArray& cond, const DeviceArray& a, const DeviceArray& b) {
        expect_dtype(cond, Dtype::bool_, "where", "cond");
        check_same_dtype("where", "a", a, "b", b);
        expect_same_device("where", {&cond, &a, &b});
        const Shape shape = broadcast_shapes("where", {cond.shape, a.shape, b.shape});
        DeviceArray out = empty(shape, a.dtype, a.device);
        run_elementwise("where", EwOp::where, compute_of(a.dtype), shape, contiguous_operand(out),
                        {broadcast_operand(cond, shape), broadcast_operand(a, shape), broadcast_operand(b, shape)},
                        launch_on(a));
        return out;
      },
      py::arg("cond"), py::arg("a"), py::arg("b"));

  m.def(
      "cast", [](const DeviceArray& x, const std::string& dtype) { return cast_to(x, dtype_from_name(dtype)); },
      py::arg("x"), py::arg("dtype"));

  m.def(
      "strided_copy",
      [](const DeviceArray& x, const Shape& shape, const Shape& strides, int64_t offset) {
        check_reach("strided_copy", "x", shape, strides, offset, x.numel());
        DeviceArray out = empty(shape, x.dtype, x.device);
        const Operand in{element_pointer(x, offset), x.dtype, strides};
        run_elementwise("strided_copy", EwOp::copy, compute_of(x.dtype), shape, contiguous_operand(out), {in},
                        launch_on(x));
        return out;
      },
      py::arg("x"), py::arg("shape"), py::arg("strides"), py::arg("offset"));

  m.def(
      "strided_assign",
      [](const DeviceArray& dst, const Shape& shape, const Shape& strides, int64_t offset, const DeviceArray& src) {
        check_reach("strided_assign", "dst", shape, strides, offset, dst.numel());
        expect_same_device("strided_assign", {&dst, &src});
        for (size_t d = 0; d < shape.size(); ++d)
          if (strides[d] == 0 && shape[d] > 1)
            throw py::value_error("strided_assign: stride 0 on dimension " + std::to_string(d) + " of shape " +
                                  shape_str(shape) + " would write one element several times");
        if (broadcast_shapes("strided_assign", {src.shape, shape}) != shape)
          throw py::value_error("strided_assign: src of shape " + shape_of(src) + " cannot be broadcast to " +
                                shape_str(shape));
        const DeviceArray source = detached(src, dst);
        const Operand out{element_pointer(dst, offset), dst.dtype, strides};
        run_elementwise("strided_assign", EwOp::copy, compute_of(source.dtype), shape, out,
                        {broadcast_operand(source, shape)}, launch_on(dst));
      },
      py::arg("dst"), py::arg("shape"), py::arg("strides"), py::arg("offset"), py::arg("src"));

  m.def("reduce", &reduce, py::arg("op"), py::arg("x"), py::arg("axes"), py::arg("keepdims"));
  m.def("arg_reduce", &arg_reduce, py::arg("op"), py::arg("x"), py::arg("axis"), py::arg("keepdims"));

  m.def(
      "cumsum",
      [](const DeviceArray& x, int64_t axis) {
        check_axis("cumsum", axis, x);
        DeviceArray out = empty(x.shape, compute_of(x.dtype), x.device);
        const auto [outer, inner] = outer_inner(x.shape, axis);
        const cudaStream_t stream = launch_on(x);
        py::gil_scoped_release nogil;
        cumsum(out.raw(), out.dtype, x.raw(), x.dtype, outer, x.shape[axis], inner, compute_of(x.dtype), stream);
        return out;
      },
      py::arg("x"), py::arg("axis"));

  m.def(
      "take_along_axis",
      [](const DeviceArray& x, const DeviceArray& index, int64_t axis) {
        const AlongAxis a = along_axis("take_along_axis", x, index, axis);
        expect_same_device("take_along_axis", {&x, &index});
        DeviceArray out = empty(Shape(a.shape, a.shape + a.ndim), x.dtype, x.device);
        const cudaStream_t stream = launch_on(x);
        py::gil_scoped_release nogil;
        take_along_axis(out.raw(), x.raw(), x.dtype, index.data<int64_t>(), a, stream);
        return out;
      },
      py::arg("x"), py::arg("index"), py::arg("axis"));

  m.def(
      "put_along_axis",
      [](const DeviceArray& dst, const DeviceArray& index, const DeviceArray& src, int64_t axis, bool accumulate) {
        AlongAxis a = along_axis("put_along_axis", dst, index, axis);
        expect_same_device("put_along_axis", {&dst, &index, &src});
        check_same_dtype("put_along_axis", "dst", dst, "src", src);
        if (accumulate && dst.dtype == Dtype::uint8)
          throw py::type_error("put_along_axis: accumulate needs a float32, int64 or bool dst, got uint8");
        const Shape shape(a.shape, a.shape + a.ndim);
        if (broadcast_shapes("put_along_axis", {src.shape, shape}) != shape)
          throw py::value_error("put_along_axis: src of shape " + shape_of(src) + " cannot be broadcast to " +
                                shape_str(shape));
        const DeviceArray source = detached(src, dst);
        const Operand broadcast = broadcast_operand(source, shape);
        std::copy(broadcast.strides.begin(), broadcast.strides.end(), a.src_strides);
        const cudaStream_t stream = launch_on(dst);
        py::gil_scoped_release nogil;
        put_along_axis(dst.raw(), dst.dtype, index.data<int64_t>(), source.raw(), a, accumulate, stream);
      },
      py::arg("dst"), py::arg("index"), py::arg("src"), py::arg("axis"), py::arg("accumulate"));

  m.def(
      "index_select",
      [](const DeviceArray& x, int64_t axis, const DeviceArray& index) {
        index_input(index, "index_select", "index");
        check_axis("index_select", axis, x);
        expect_same_device("index_select", {&x, &index});
        DeviceArray out = empty(index_select_shape(x, axis, index), x.dtype, x.device);
        const auto [outer, inner] = outer_inner(x.shape, axis);
        const cudaStream_t stream = launch_on(x);
        py::gil_scoped_release nogil;
        index_select(out.raw(), x.raw(), x.dtype, index.data<int64_t>(), outer, x.shape[axis], inner, index.numel(),
                     stream);
        return out;
      },
      py::arg("x"), py::arg("axis"), py::arg("index"));

  m.def(
      "index_add",
      [](const DeviceArray& dst, int64_t axis, const DeviceArray& index, const DeviceArray& src) {
        index_input(index, "index_add", "index");
        check_axis("index_add", axis, dst);
        expect_same_device("index_add", {&dst, &index, &src});
        check_same_dtype("index_add", "dst", dst, "src", src);
        if (dst.dtype != Dtype::float32 && dst.dtype != Dtype::int64)
          throw py::type_error(std::string("index_add: dst must be float32 or int64, got ") + dtype_name(dst.dtype));
        expect_shape(src, index_select_shape(dst, axis, index), "index_add", "src");
        const DeviceArray source = detached(src, dst);
        const auto [outer, inner] = outer_inner(dst.shape, axis);
        const cudaStream_t stream = launch_on(dst);
        py::gil_scoped_release nogil;
        index_add(dst.raw(), dst.dtype, index.data<int64_t>(), source.raw(), outer, dst.shape[axis], inner,
                  index.numel(), stream);
      },
      py::arg("dst"), py::arg("axis"), py::arg("index"), py::arg("src"));

  m.def(
      "nonzero",
      [](const DeviceArray& x) {
        check_ndim_limit("nonzero", x);
        return nonzero(x, launch_on(x));
      },
      py::arg("x"));

  m.def(
      "concatenate",
      [](const std::vector<DeviceArray>& arrays, int64_t axis) {
        if (arrays.empty()) throw py::value_error("concatenate: needs at least one array");
        const DeviceArray& first = arrays[0];
        check_axis("concatenate", axis, first);
        Shape shape = first.shape;
        shape[axis] = 0;
        for (size_t k = 0; k < arrays.size(); ++k) {
          const DeviceArray& a = arrays[k];
          const std::string name = "arrays[" + std::to_string(k) + "]";
          check_same_dtype("concatenate", "arrays[0]", first, name.c_str(), a);
          expect_same_device("concatenate", {&first, &a});
          bool fits = a.ndim() == first.ndim();
          for (int d = 0; fits && d < a.ndim(); ++d) fits = d == axis || a.shape[d] == first.shape[d];
          if (!fits)
            throw py::value_error("concatenate: " + name + " of shape " + shape_of(a) +
                                  " does not match arrays[0] of shape " + shape_of(first) + " outside axis " +
                                  std::to_string(axis));
          shape[axis] += a.shape[axis];
        }
        DeviceArray out = empty(shape, first.dtype, first.device);
        const auto [outer, inner] = outer_inner(shape, axis);
        const cudaStream_t stream = launch_on(first);
        int64_t column = 0;  // where the next array starts along axis
        for (const DeviceArray& a : arrays) {
          // out viewed as (outer, shape[axis] * inner); a fills the columns from column * inner.
          const Shape block{outer, a.shape[axis] * inner};
          const Operand target{element_pointer(out, column * inner), out.dtype, {shape[axis] * inner, 1}};
          const Operand source{a.raw(), a.dtype, {block[1], 1}};
          run_elementwise("concatenate", EwOp::copy, compute_of(a.dtype), block, target, {source}, stream);
          column += a.shape[axis];
        }
        return out;
      },
      py::arg("arrays"), py::arg("axis"));

  m.def("sort", &sort_along, py::arg("x"), py::arg("axis"), py::arg("descending"));

  m.def(
      "topk",
      [](const DeviceArray& x, int64_t k, int64_t axis, bool largest, bool sorted) {
        (void)sorted;  // the k results always come sorted (allowed when sorted is false)
        check_axis("topk", axis, x);
        if (k < 0 || k > x.shape[axis])
          throw py::value_error("topk: k (" + std::to_string(k) + ") must be in [0, " + std::to_string(x.shape[axis]) +
                                "], the size of axis " + std::to_string(axis) + " of shape " + shape_of(x));
        const auto [values, indices] = sort_along(x, axis, largest);
        return std::make_pair(leading(values, axis, k), leading(indices, axis, k));
      },
      py::arg("x"), py::arg("k"), py::arg("axis"), py::arg("largest"), py::arg("sorted"));

  m.def(
      "uniform",
      [](const Shape& shape, float low, float high, uint64_t seed, int device) {
        DeviceArray out = empty(shape_arg("uniform", shape), Dtype::float32, device);
        const cudaStream_t stream = launch_on(out);
        py::gil_scoped_release nogil;
        uniform(out.data<float>(), out.numel(), low, high, seed, stream);
        return out;
      },
      py::arg("shape"), py::arg("low"), py::arg("high"), py::arg("seed"), py::arg("device"));

  m.def(
      "normal",
      [](const Shape& shape, float mean, float std, uint64_t seed, int device) {
        DeviceArray out = empty(shape_arg("normal", shape), Dtype::float32, device);
        const cudaStream_t stream = launch_on(out);
        py::gil_scoped_release nogil;
        normal(out.data<float>(), out.numel(), mean, std, seed, stream);
        return out;
      },
      py::arg("shape"), py::arg("mean"), py::arg("std"), py::arg("seed"), py::arg("device"));

  m.def(
      "randint",
      [](const Shape& shape, int64_t low, int64_t high, uint64_t seed, int device) {
        if (high <= low)
          throw py::value_error("randint: high (" + std::to_string(high) + ") must be greater than low (" +
                                std::to_string(low) + ")");
        DeviceArray out = empty(shape_arg("randint", shape), Dtype::int64, device);
        const cudaStream_t stream = launch_on(out);
        py::gil_scoped_release nogil;
        randint(out.data<int64_t>(), out.numel(), low, high, seed, stream);
        return out;
      },
      py::arg("shape"), py::arg("low"), py::arg("high"), py::arg("seed"), py::arg("device"));
}

}  // namespace pcn::cuda::bind
