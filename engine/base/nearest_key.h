// "Did you mean ...?" for configuration keys: the valid key nearest to a misspelt one by edit distance.
#pragma once
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace qsft {

// Levenshtein distance (insertions, deletions, substitutions; bytes).
inline size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The valid key with the smallest edit distance to key (the first of equals), or "" when none is close enough to
// be a plausible typo (distance above a third of the key's length, at least 2).
inline std::string nearest_key(std::string_view key, const std::vector<std::string>& valid) {
  const size_t limit = std::max<size_t>(2, key.size() / 3);
  std::string best;
  size_t best_distance = limit + 1;
  for (const std::string& v : valid) {
    size_t d = edit_distance(key, v);
    if (d < best_distance) {
      best_distance = d;
      best = v;
    }
  }
  return best;
}

}  // namespace qsft
