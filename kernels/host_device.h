// QSFT_HD marks a function both the host (the CPU reference) and CUDA kernels call: __host__ __device__ under nvcc.
#pragma once

#if defined(__CUDACC__)
#define QSFT_HD __host__ __device__
#else
#define QSFT_HD
#endif
