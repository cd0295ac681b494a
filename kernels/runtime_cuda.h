// The CUDA runtime as the backend needs it, behind plain C++ declarations (engine/ops_cuda.cpp is compiled by
// g++): device discovery that treats any failure as "no GPU", one stream, device memory, copies, and a growable
// scratch buffer, event timing. Streams are passed as void* (a cudaStream_t). Every call is checked; failures throw
// with file:line, except in what runs from destructors (device_free, ~ScratchBuffer, ~EventTimer, stream_destroy):
// after a CUDA fault (a sticky error: every later call fails) those report on stderr and never throw.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace qsft::cuda {

// Usable CUDA devices; 0 when the runtime reports none or fails (no driver: cudaErrorInsufficientDriver, 35),
// with the reason in *why.
int device_count(std::string* why);
// "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.1 GiB" for the current device.
std::string device_description();
// Free memory of the current device in bytes (cudaMemGetInfo): what gradient_checkpointing "auto" plans against.
size_t device_memory_free();

// A stream on the current device. Blocking (it orders with the legacy default stream), so that CUDA events
// recorded on stream nullptr time the work queued on it (EventTimer in bench/gpu_ops_bench.cpp).
void* stream_create();
void stream_destroy(void* stream);
void stream_sync(void* stream);

void* device_alloc(size_t bytes, void* stream);  // zeroed (on the stream, then synchronised), 256-byte aligned
// Waits for the work queued on stream (it may still use p), then frees p. Never throws (runs from destructors).
void device_free(void* p, void* stream);
// Pinned host memory mapped into the device's address space (cudaHostAllocMapped; with UVA the returned pointer is
// valid in kernels too), zeroed, page-aligned. host_free waits for the stream's work, then frees; never throws.
void* host_alloc_mapped(size_t bytes, void* stream);
void host_free(void* p, void* stream);
// Copies between host and device memory; either side may also be host-mapped memory (the kind is inferred: UVA).
void copy_h2d(void* dst, const void* host_src, size_t bytes, void* stream);  // returns when host_src may be reused
void copy_d2h(void* host_dst, const void* src, size_t bytes, void* stream);  // returns when host_dst is filled
void copy_d2d(void* dst, const void* src, size_t bytes, void* stream);       // ordered on the stream
// `rows` rows of `width` bytes, from src rows spitch bytes apart to dst rows dpitch apart (strided views)
void copy_d2d_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t rows, void* stream);
void fill_zero(void* p, size_t bytes, void* stream);
void fill_bytes(void* p, int byte, size_t bytes, void* stream);  // every byte = byte (tests poison with 0xff)

// True when QSFT_SYNC_LAUNCHES or CUDA_LAUNCH_BLOCKING is set (not "0"): every kernel launch and GEMM is then
// synchronised and checked, so a fault names the launching function instead of surfacing at a later call.
bool sync_launches();

// True when QSFT_ZERO_GEMM_OUTPUTS is set (not "0"): every GEMM with beta = 0 zeroes its output first. For
// compute-sanitizer's initcheck only (tools/gpu-check.sh), which does not see the stores of some cuBLASLt kernels:
// in 45ffbc3's H200 run it flagged lm_head_ce's copy of a cuBLASLt product whose values matched the CPU's.
bool zero_gemm_outputs();

// Device time between start() and stop_ms() from CUDA events recorded on `stream` (nullptr: the legacy default
// stream, which waits for and holds back the blocking streams of stream_create()).
class EventTimer {
 public:
  explicit EventTimer(void* stream = nullptr);
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  void start();
  float stop_ms();  // waits for the stop event; milliseconds since start()

 private:
  void* stream_;
  void* start_ = nullptr;
  void* stop_ = nullptr;
};

// Device memory that grows to the largest size asked of it and is reused on the stream. Sizes repeat from step
// to step, so it grows during the first step only; grow_count() lets tests and benchmarks check that.
class ScratchBuffer {
 public:
  explicit ScratchBuffer(void* stream) : stream_(stream) {}
  ~ScratchBuffer();
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  void* get(size_t bytes);  // at least `bytes`, 256-byte aligned; contents undefined
  size_t capacity() const { return capacity_; }
  int grow_count() const { return grows_; }

 private:
  void* stream_;
  void* data_ = nullptr;
  size_t capacity_ = 0;
  int grows_ = 0;
};

}  // namespace qsft::cuda
