#include "tokenizer/bpe.h"

#include <algorithm>
#include <stdexcept>

#include "tokenizer/bpe_cache.h"

namespace qsft {

// Open-addressing map from a pair of token ids to the merge's rank and the id of the merged token.
struct BpeModel::PairTable {
  struct Slot {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t merged = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  explicit PairTable(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    slots.resize(cap);
    mask = cap - 1;
  }
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  size_t home(uint64_t k) const { return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> 20) & mask; }
  // Keeps the first (lowest-rank) entry when a pair is listed twice, as Hugging Face does.
  void insert(int32_t a, int32_t b, int32_t rank, int32_t merged) {
    uint64_t k = key(a, b);
    for (size_t i = home(k);; i = (i + 1) & mask) {
      if (slots[i].key == k) return;
      if (slots[i].key == kEmpty) {
        slots[i] = {k, rank, merged};
        return;
      }
    }
  }
  const Slot* find(int32_t a, int32_t b) const {
    uint64_t k = key(a, b);
    for (size_t i = home(k);; i = (i + 1) & mask) {
      if (slots[i].key == k) return &slots[i];
      if (slots[i].key == kEmpty) return nullptr;
    }
  }

  std::vector<Slot> slots;
  size_t mask;
};

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab, const std::vector<Merge>& merges, bool ignore_merges)
    : vocab_(std::move(vocab)), ignore_merges_(ignore_merges) {
  int32_t limit = 0;
  for (auto& [bytes, id] : vocab_) {
    if (id < 0 || id >= kMaxTokenIds)
      throw std::invalid_argument("token id " + std::to_string(id) + " is out of range");
    limit = std::max(limit, id + 1);
  }
  id_to_bytes_.resize(static_cast<size_t>(limit));
  for (auto& [bytes, id] : vocab_) id_to_bytes_[static_cast<size_t>(id)] = bytes;
  for (int b = 0; b < 256; ++b) {
    byte_id_[b] = id_of(std::string(1, static_cast<char>(b)));
    if (byte_id_[b] < 0) throw std::invalid_argument("byte " + std::to_string(b) + " is not a token");
  }
  pairs_ = std::make_unique<PairTable>(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const Merge& m = merges[r];
    int32_t a = id_of(m.left), b = id_of(m.right), ab = id_of(m.left + m.right);
    if (a < 0 || b < 0 || ab < 0)
      throw std::invalid_argument("merge " + std::to_string(r) + " uses a token that is not in the vocabulary");
    pairs_->insert(a, b, static_cast<int32_t>(r), ab);
  }
  cache_ = std::make_unique<BpeCache>();
}

BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;
BpeModel::~BpeModel() = default;

int32_t BpeModel::id_of(std::string_view bytes) const {
  auto it = vocab_.find(std::string(bytes));
  return it == vocab_.end() ? -1 : it->second;
}

void BpeModel::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_id_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  if (cache_->lookup(piece, out)) return;
  size_t first = out.size();
  if (int32_t whole = ignore_merges_ ? id_of(piece) : -1; whole >= 0)
    out.push_back(whole);
  else
    merge(piece, out);
  cache_->insert(piece, out.data() + first, out.size() - first);
}

// The merge loop: a doubly linked list of symbols and a min-heap of candidate merges (rank, then position).
// A candidate is stale when either symbol has changed since it was pushed; it is then skipped.
void BpeModel::merge(std::string_view piece, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id, prev, next;
    bool alive;
  };
  struct Candidate {
    int32_t rank, pos, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<Symbol> sym;
  thread_local std::vector<Candidate> heap;
  const int32_t n = static_cast<int32_t>(piece.size());
  sym.resize(static_cast<size_t>(n));
  heap.clear();
  auto push_pair = [&](int32_t pos) {
    int32_t next = sym[pos].next;
    if (next < 0) return;
    if (const PairTable::Slot* s = pairs_->find(sym[pos].id, sym[next].id)) {
      heap.push_back({s->rank, pos, s->merged});
      std::push_heap(heap.begin(), heap.end(), std::greater<>{});
    }
  };
  for (int32_t i = 0; i < n; ++i)
    sym[i] = {byte_id_[static_cast<unsigned char>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1, true};
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    Candidate c = heap.back();
    heap.pop_back();
    Symbol& left = sym[c.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[left.next];
    const PairTable::Slot* s = pairs_->find(left.id, right.id);
    if (!s || s->merged != c.merged) continue;
    left.id = c.merged;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = c.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace qsft
