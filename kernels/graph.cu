#include "kernels/graph_cuda.h"
#include "kernels/kernel_util_cuda.h"

namespace qsft::cuda {

void graph_capture_begin(void* stream) {
  QSFT_CUDA_CHECK(cudaStreamBeginCapture(as_stream(stream), cudaStreamCaptureModeThreadLocal));
}

void* graph_capture_end(void* stream, std::string* why) {
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(as_stream(stream), &graph);
  cudaGraphExec_t exec = nullptr;
  if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (e == cudaSuccess) return exec;
  cudaGetLastError();  // capture errors are not sticky: clear the last-error state for later calls
  if (why) *why = std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")";
  return nullptr;
}

void graph_launch(void* graph, void* stream) {
  QSFT_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph), as_stream(stream)));
}

void graph_destroy(void* graph) {
  if (graph) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph));
}

}  // namespace qsft::cuda
