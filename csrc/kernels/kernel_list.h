// The kernel table's single list: every kernel the dispatcher can call, by family. Each family
// header defines PCN_<FAMILY>_KERNELS(X) as X(name, (parameters)) entries (all return void); the
// table (dispatch.h), the per-ISA declarations and the reference set are all generated from it.
#pragma once
#include "kernels/activation.h"
#include "kernels/conv.h"
#include "kernels/eltwise.h"
#include "kernels/gemm.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "kernels/optim.h"
#include "kernels/peak.h"
#include "kernels/pool.h"

#define PCN_KERNEL_LIST(X) \
  PCN_GEMM_KERNELS(X)      \
  PCN_CONV_KERNELS(X)      \
  PCN_POOL_KERNELS(X)      \
  PCN_LOSS_KERNELS(X)      \
  PCN_OPTIM_KERNELS(X)     \
  PCN_ELTWISE_KERNELS(X)   \
  PCN_NORM_KERNELS(X)      \
  PCN_PEAK_KERNELS(X)      \
  PCN_ACTIVATION_KERNELS(X)
