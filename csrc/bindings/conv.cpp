// Bindings for conv2d forward and backward.
#include "bindings/common.h"
#include "bindings/descriptors.h"
#include "dispatch.h"

#include <optional>

namespace pcn::bind {
namespace {

constexpr const char* kAlgorithmNames[] = {"auto", "gemm", "pointwise", "window", "winograd", "tiles", "direct", "dense"};
constexpr int kAlgorithmCount = sizeof(kAlgorithmNames) / sizeof(kAlgorithmNames[0]);
constexpr const char* kPassNames[] = {"forward", "backward_data", "backward_weight"};

// The named ISA's kernels, or those in use.
const KernelTable& row(const std::optional<std::string>& isa) {
  return isa ? kernels_for(isa_from_name(*isa)) : kernels();
}

std::vector<std::string> candidate_names(uint32_t mask) {
  std::vector<std::string> names;
  for (int a = 1; a < kAlgorithmCount; ++a)
    if (mask >> a & 1) names.push_back(kAlgorithmNames[a]);
  return names;
}

// Sets d.algorithm to the named one; ValueError unless it is "auto" or a candidate for the pass.
void choose_algorithm(Conv2dDesc& d, ConvPass pass, const std::string& name, const KernelTable& table) {
  int index = 0;
  while (index < kAlgorithmCount && name != kAlgorithmNames[index]) ++index;
  if (index == kAlgorithmCount)
    throw py::value_error("conv2d: algorithm must be one of auto, gemm, pointwise, window, winograd, tiles, direct; got '" +
                          name + "'");
  if (index == 0) return;
  uint32_t mask = 0;
  ConvAlgorithm heuristic;
  table.conv2d_algorithms(&mask, &heuristic, pass, d);
  if (!(mask >> index & 1)) {
    std::string allowed;
    for (const std::string& candidate : candidate_names(mask)) allowed += (allowed.empty() ? "" : ", ") + candidate;
    throw py::value_error(std::string("conv2d ") + kPassNames[static_cast<int>(pass)] + ": algorithm '" + name +
                          "' cannot compute this convolution (input " +
                          shape_str({d.batch, d.in_channels, d.in_h, d.in_w}) + ", kernel " +
                          std::to_string(d.kernel_h) + "x" + std::to_string(d.kernel_w) + ", stride " +
                          std::to_string(d.stride_h) + "x" + std::to_string(d.stride_w) + "); candidates: " +
                          (allowed.empty() ? "none with this ISA" : allowed));
  }
  d.algorithm = static_cast<ConvAlgorithm>(index);
}

ConvPass pass_from_name(const std::string& name) {
  for (int p = 0; p < 3; ++p)
    if (name == kPassNames[p]) return static_cast<ConvPass>(p);
  throw py::value_error("conv2d_algorithms: pass must be forward, backward_data or backward_weight, got '" + name +
                        "'");
}

FloatArray conv_input(const py::handle& obj, const char* name) {
  FloatArray a = float_input(obj, "conv2d", name);
  expect_ndim(a, 4, "conv2d", name, "(N, C, H, W)");
  return a;
}

FloatArray weight_input(const py::handle& obj) {
  FloatArray w = float_input(obj, "conv2d", "weight");
  expect_ndim(w, 4, "conv2d", "weight", "(out_channels, in_channels/groups, kH, kW)");
  return w;
}

void expect_grad_output(const FloatArray& dy, const Conv2dDesc& d) {
  expect_shape(dy, {d.batch, d.out_channels, d.out_h, d.out_w}, "conv2d backward", "grad_output");
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def(
      "conv2d_forward",
      [](const py::handle& x_obj, const py::handle& w_obj, const py::handle& b_obj, Pair stride, Pair padding,
         Pair dilation, int64_t groups,
         const std::string& algorithm, const std::optional<std::string>& isa, bool bf16) {
        FloatArray x = conv_input(x_obj, "input"), w = weight_input(w_obj);
        Conv2dDesc d = conv_desc(shape_of(x), shape_of(w), stride, padding, dilation, groups);
        d.bf16 = bf16;
        const KernelTable& table = row(isa);
        choose_algorithm(d, ConvPass::forward, algorithm, table);
        FloatArray b;
        if (!b_obj.is_none()) {
          b = float_input(b_obj, "conv2d", "bias");
          expect_shape(b, {d.out_channels}, "conv2d", "bias");
        }
        FloatArray y = empty_float({d.batch, d.out_channels, d.out_h, d.out_w});
        const float* bias = b_obj.is_none() ? nullptr : b.data();
        float* y_data = y.mutable_data();
        {
          py::gil_scoped_release nogil;
          table.conv2d_forward(y_data, x.data(), w.data(), bias, d);
        }
        return y;
      },
      py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"), py::kw_only(), py::arg("algorithm") = "auto",
      py::arg("isa") = py::none(), py::arg("bf16") = false);
  m.def(
      "conv2d_backward_data",
      [](const py::handle& dy_obj, const py::handle& w_obj, std::vector<int64_t> input_shape, Pair stride,
         Pair padding, Pair dilation, int64_t groups,
         const std::string& algorithm, const std::optional<std::string>& isa, bool bf16) {
        FloatArray dy = conv_input(dy_obj, "grad_output"), w = weight_input(w_obj);
        if (input_shape.size() != 4)
          throw py::value_error("conv2d backward: input_shape must have 4 entries, got " + shape_str(input_shape));
        FloatArray dx = empty_float(input_shape);
        Conv2dDesc d = conv_desc(input_shape, shape_of(w), stride, padding, dilation, groups);
        d.bf16 = bf16;
        expect_grad_output(dy, d);
        const KernelTable& table = row(isa);
        choose_algorithm(d, ConvPass::backward_data, algorithm, table);
        float* dx_data = dx.mutable_data();
        {
          py::gil_scoped_release nogil;
          table.conv2d_backward_data(dx_data, dy.data(), w.data(), d);
        }
        return dx;
      },
      py::arg("grad_output"), py::arg("weight"), py::arg("input_shape"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"), py::kw_only(), py::arg("algorithm") = "auto",
      py::arg("isa") = py::none(), py::arg("bf16") = false);
  m.def(
      "conv2d_backward_weight",
      [](const py::handle& dy_obj, const py::handle& x_obj, std::vector<int64_t> weight_shape, Pair stride,
         Pair padding, Pair dilation, int64_t groups,
         const std::string& algorithm, const std::optional<std::string>& isa, bool bf16) {
        FloatArray dy = conv_input(dy_obj, "grad_output"), x = conv_input(x_obj, "input");
        if (weight_shape.size() != 4)
          throw py::value_error("conv2d backward: weight_shape must have 4 entries, got " + shape_str(weight_shape));
        Conv2dDesc d = conv_desc(shape_of(x), weight_shape, stride, padding, dilation, groups);
        d.bf16 = bf16;
        expect_grad_output(dy, d);
        const KernelTable& table = row(isa);
        choose_algorithm(d, ConvPass::backward_weight, algorithm, table);
        FloatArray dw = empty_float(weight_shape);
        float* dw_data = dw.mutable_data();
        {
          py::gil_scoped_release nogil;
          table.conv2d_backward_weight(dw_data, dy.data(), x.data(), d);
        }
        return dw;
      },
      py::arg("grad_output"), py::arg("input"), py::arg("weight_shape"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"), py::kw_only(), py::arg("algorithm") = "auto",
      py::arg("isa") = py::none(), py::arg("bf16") = false);
  m.def(
      "conv2d_algorithms",
      [](const std::string& pass_name, std::vector<int64_t> input_shape, std::vector<int64_t> weight_shape,
         Pair stride, Pair padding, Pair dilation, int64_t groups, const std::optional<std::string>& isa, bool bf16) {
        const ConvPass pass = pass_from_name(pass_name);
        if (input_shape.size() != 4 || weight_shape.size() != 4)
          throw py::value_error("conv2d_algorithms: input_shape and weight_shape must have 4 entries, got " +
                                shape_str(input_shape) + " and " + shape_str(weight_shape));
        Conv2dDesc d = conv_desc(input_shape, weight_shape, stride, padding, dilation, groups);
        d.bf16 = bf16;
        uint32_t mask = 0;
        ConvAlgorithm heuristic;
        row(isa).conv2d_algorithms(&mask, &heuristic, pass, d);
        return py::make_tuple(candidate_names(mask), kAlgorithmNames[static_cast<int>(heuristic)]);
      },
      py::arg("pass_"), py::arg("input_shape"), py::arg("weight_shape"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"), py::kw_only(), py::arg("isa") = py::none(), py::arg("bf16") = false,
      "The algorithms that can compute a conv2d pass (forward, backward_data, backward_weight) of these "
      "shapes with an ISA's kernels (of bfloat16 operands: bf16=True), and the one the fixed heuristic "
      "takes ('auto' for the reference ISA).");
  m.def(
      "conv2d_relu_max_pool2d_backward",
      [](const py::handle& gy_obj, const py::handle& y_obj, const py::handle& i_obj, const py::handle& x_obj,
         const py::handle& w_obj, Pair stride, Pair padding, bool input_grad, bool bias_grad,
         const std::optional<std::string>& isa) -> py::tuple {
        constexpr const char* op = "conv2d_relu_max_pool2d backward";
        FloatArray x = conv_input(x_obj, "input"), w = weight_input(w_obj);
        const std::vector<int64_t> weight_shape = shape_of(w);
        const Conv2dDesc d = conv_desc(shape_of(x), weight_shape, stride, padding, {1, 1}, 1);
        FloatArray gy = float_input(gy_obj, op, "grad_output");
        expect_ndim(gy, 4, op, "grad_output", "(N, C, H, W)");
        const std::vector<int64_t> pooled_shape = shape_of(gy);
        if (pooled_shape[0] != d.batch || pooled_shape[1] != d.out_channels)
          throw py::value_error(std::string(op) + ": grad_output must have shape (" + std::to_string(d.batch) + ", " +
                                std::to_string(d.out_channels) + ", H, W) for input " + shape_str(shape_of(x)) +
                                " and weight " + shape_str(weight_shape) + ", got " + shape_str(pooled_shape));
        FloatArray y = float_input(y_obj, op, "output");
        expect_shape(y, pooled_shape, op, "output");
        IndexArray indices = argmax_input(i_obj, op, pooled_shape);
        const KernelTable& table = row(isa);
        FloatArray dx, dw = empty_float(weight_shape), db;
        if (input_grad) dx = empty_float(shape_of(x));
        if (bias_grad) db = empty_float({d.out_channels});
        float* dx_data = input_grad ? dx.mutable_data() : nullptr;
        float* dw_data = dw.mutable_data();
        float* db_data = bias_grad ? db.mutable_data() : nullptr;
        int64_t first_invalid;
        {
          py::gil_scoped_release nogil;
          table.conv2d_relu_max_pool2d_backward(dx_data, dw_data, db_data, &first_invalid, gy.data(), y.data(),
                                                indices.data(), x.data(), w.data(), d, pooled_shape[2],
                                                pooled_shape[3]);
        }
        report_invalid_index(indices, first_invalid, op, d.out_h * d.out_w, "the convolution's output plane");
        return py::make_tuple(input_grad ? py::object(dx) : py::object(py::none()), dw,
                              bias_grad ? py::object(db) : py::object(py::none()));
      },
      py::arg("grad_output"), py::arg("output"), py::arg("indices"), py::arg("input"), py::arg("weight"),
      py::arg("stride"), py::arg("padding"), py::kw_only(), py::arg("input_grad"), py::arg("bias_grad"),
      py::arg("isa") = py::none(),
      "The input (or None), weight and bias (or None) gradients of conv2d (dilation 1, one group) -> ReLU -> "
      "max_pool2d from the pooled gradient, the pooled output and the argmax indices, without the dense output "
      "gradient.");
  m.def(
      "conv2d_backward_bias",
      [](const py::handle& dy_obj, bool bf16) {
        FloatArray dy = conv_input(dy_obj, "grad_output");
        Conv2dDesc d;  // only the output geometry (and autocast's rounding) matters for the bias gradient
        d.bf16 = bf16;
        d.batch = dy.shape(0);
        d.out_channels = dy.shape(1);
        d.out_h = dy.shape(2);
        d.out_w = dy.shape(3);
        FloatArray db = empty_float({d.out_channels});
        float* db_data = db.mutable_data();
        {
          py::gil_scoped_release nogil;
          kernels().conv2d_backward_bias(db_data, dy.data(), d);
        }
        return db;
      },
      py::arg("grad_output"), py::kw_only(), py::arg("bf16") = false,
      "The bias gradient: grad_output summed over images and positions (bf16=True: its values rounded to "
      "bfloat16 first, as autocast's other passes read them).");
}

}  // namespace pcn::bind
