// CUDA graphs behind plain C++ declarations (engine/ops_cuda.cpp is compiled by g++): the work queued on a stream
// between capture_begin and capture_end is recorded instead of run, then launched again as one graph (generation's
// decode step: engine/generate/decode_graphs.h). Handles are void* (a cudaGraphExec_t).
#pragma once
#include <string>

namespace qsft::cuda {

// Starts recording `stream` (thread-local mode: a call of this thread that is not allowed while capturing, such as
// a synchronisation or an allocation, fails and invalidates the capture).
void graph_capture_begin(void* stream);
// Ends the recording and instantiates it: the graph, or nullptr with the reason in *why when the capture was
// invalidated or the graph cannot be instantiated. Always leaves the stream out of capture mode; never throws.
void* graph_capture_end(void* stream, std::string* why);
void graph_launch(void* graph, void* stream);  // runs the recorded work again, queued on stream
void graph_destroy(void* graph);               // never throws (runs from destructors)

}  // namespace qsft::cuda
