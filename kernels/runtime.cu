#include "kernels/kernel_util_cuda.h"
#include "kernels/runtime_cuda.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace qsft::cuda {

namespace {
bool env_flag(const char* name) {  // set and not "0"
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}
}  // namespace

bool sync_launches() {
  static const bool on = env_flag("QSFT_SYNC_LAUNCHES") || env_flag("CUDA_LAUNCH_BLOCKING");
  return on;
}

bool zero_gemm_outputs() {
  static const bool on = env_flag("QSFT_ZERO_GEMM_OUTPUTS");
  return on;
}

int device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // reset the last-error state so later calls start clean
    if (why) *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
    return 0;
  }
  if (n == 0 && why) *why = "cudaGetDeviceCount found no device";
  return n;
}

std::string device_description() {
  int dev = 0;
  cudaDeviceProp p{};
  QSFT_CUDA_CHECK(cudaGetDevice(&dev));
  QSFT_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  char buf[256];
  snprintf(buf, sizeof buf, "%s, sm_%d%d, %d SMs, %.1f GiB", p.name, p.major, p.minor, p.multiProcessorCount,
           double(p.totalGlobalMem) / double(1ull << 30));
  return buf;
}

size_t device_memory_free() {
  size_t free = 0, total = 0;
  QSFT_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return free;
}

namespace {
// A failed call in a destructor: printed once (after a sticky fault every later call fails the same way); the
// runtime unloading at process exit is no error.
void report_quietly(cudaError_t e, const char* what) {
  static bool reported = false;
  if (e == cudaSuccess || e == cudaErrorCudartUnloading || reported) return;
  reported = true;
  std::fprintf(stderr, "CUDA error during cleanup (%s): %s (%s); later cleanup errors are not printed\n", what,
               cudaGetErrorName(e), cudaGetErrorString(e));
}
}  // namespace

void* stream_create() {
  cudaStream_t s = nullptr;
  QSFT_CUDA_CHECK(cudaStreamCreate(&s));
  return s;
}
void stream_destroy(void* stream) { report_quietly(cudaStreamDestroy(as_stream(stream)), "cudaStreamDestroy"); }
void stream_sync(void* stream) { QSFT_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream))); }

void* device_alloc(size_t bytes, void* stream) {
  void* p = nullptr;
  QSFT_CUDA_CHECK(cudaMalloc(&p, bytes == 0 ? 256 : bytes));
  QSFT_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes == 0 ? 256 : bytes, as_stream(stream)));
  QSFT_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream)));
  return p;
}
void device_free(void* p, void* stream) {
  report_quietly(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize before cudaFree");
  report_quietly(cudaFree(p), "cudaFree");
}

void* host_alloc_mapped(size_t bytes, void*) {
  void* p = nullptr;
  QSFT_CUDA_CHECK(cudaHostAlloc(&p, bytes == 0 ? 256 : bytes, cudaHostAllocMapped));
  void* on_device = nullptr;  // with UVA (every 64-bit CUDA platform) the same address
  QSFT_CUDA_CHECK(cudaHostGetDevicePointer(&on_device, p, 0));
  if (on_device != p) {
    report_quietly(cudaFreeHost(p), "cudaFreeHost");
    throw std::runtime_error("mapped host memory has another address on the device (no unified addressing)");
  }
  std::memset(p, 0, bytes);
  return p;
}
void host_free(void* p, void* stream) {
  report_quietly(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize before cudaFreeHost");
  report_quietly(cudaFreeHost(p), "cudaFreeHost");
}

// cudaMemcpyDefault: the direction from the pointers (UVA), so host-mapped memory works on either side.
void copy_h2d(void* dst, const void* host_src, size_t bytes, void* stream) {
  if (bytes == 0) return;
  QSFT_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyDefault, as_stream(stream)));
  QSFT_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream)));
}
void copy_d2h(void* host_dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return;
  QSFT_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDefault, as_stream(stream)));
  QSFT_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream)));
}
void copy_d2d(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0 || dst == src) return;
  QSFT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, as_stream(stream)));
}
void copy_d2d_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t rows, void* stream) {
  if (width == 0 || rows == 0) return;
  QSFT_CUDA_CHECK(
      cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyDeviceToDevice, as_stream(stream)));
}
void fill_zero(void* p, size_t bytes, void* stream) { fill_bytes(p, 0, bytes, stream); }
void fill_bytes(void* p, int byte, size_t bytes, void* stream) {
  if (bytes == 0) return;
  QSFT_CUDA_CHECK(cudaMemsetAsync(p, byte, bytes, as_stream(stream)));
}

ScratchBuffer::~ScratchBuffer() {
  if (data_) report_quietly(cudaFree(data_), "cudaFree (scratch)");
}

EventTimer::EventTimer(void* stream) : stream_(stream) {
  cudaEvent_t a = nullptr, b = nullptr;
  QSFT_CUDA_CHECK(cudaEventCreate(&a));
  start_ = a;
  QSFT_CUDA_CHECK(cudaEventCreate(&b));
  stop_ = b;
}
EventTimer::~EventTimer() {
  if (stop_) report_quietly(cudaEventDestroy(static_cast<cudaEvent_t>(stop_)), "cudaEventDestroy");
  if (start_) report_quietly(cudaEventDestroy(static_cast<cudaEvent_t>(start_)), "cudaEventDestroy");
}
void EventTimer::start() { QSFT_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(start_), as_stream(stream_))); }
float EventTimer::stop_ms() {
  QSFT_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(stop_), as_stream(stream_)));
  QSFT_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(stop_)));
  float ms = 0.0f;
  QSFT_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start_), static_cast<cudaEvent_t>(stop_)));
  return ms;
}

void* ScratchBuffer::get(size_t bytes) {
  if (bytes <= capacity_) return data_;
  // Work queued on the stream may still read the old buffer: wait for it before freeing.
  QSFT_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream_)));
  if (data_) QSFT_CUDA_CHECK(cudaFree(data_));
  data_ = nullptr;
  capacity_ = 0;
  QSFT_CUDA_CHECK(cudaMalloc(&data_, bytes));
  capacity_ = bytes;
  ++grows_;
  return data_;
}

}  // namespace qsft::cuda
