// The data pipeline's entry point: config + model folder -> train and eval token sequences with trained masks,
// and the statistics of how they were made. A token cache (data/token_cache.h) makes later runs start at once.
#pragma once
#include <string>

#include "data/data_config.h"
#include "data/data_stats.h"
#include "data/sequence_set.h"

namespace qsft {

struct PreparedData {
  SequenceSet train, eval;
  DataStats stats;
};

// Reads cfg's files with the tokenizer and chat format of model_dir. Bad records, files or settings:
// InputError naming the file, line and field; so is data with no train sequence left (saying why).
// show_progress draws a progress bar on stderr.
PreparedData prepare_data(const DataConfig& cfg, const std::string& model_dir, bool show_progress);

}  // namespace qsft
