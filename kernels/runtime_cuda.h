// The CUDA runtime as the backend needs it, behind plain C++ declarations (engine/ops_cuda.cpp is compiled by
// g++): device discovery that treats any failure as "no GPU", one stream, device memory, copies, and a growable
// scratch buffer. Streams are passed as void* (a cudaStream_t). Every call is checked; failures throw with file:line.
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

void* stream_create();  // a non-blocking stream on the current device
void stream_destroy(void* stream);
void stream_sync(void* stream);

void* device_alloc(size_t bytes, void* stream);  // zeroed (on the stream, then synchronised), 256-byte aligned
void device_free(void* p);
void copy_h2d(void* dst, const void* host_src, size_t bytes, void* stream);  // returns when host_src may be reused
void copy_d2h(void* host_dst, const void* src, size_t bytes, void* stream);  // returns when host_dst is filled
void copy_d2d(void* dst, const void* src, size_t bytes, void* stream);       // ordered on the stream
void fill_zero(void* p, size_t bytes, void* stream);
void fill_bytes(void* p, int byte, size_t bytes, void* stream);  // every byte = byte (tests poison with 0xff)

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
