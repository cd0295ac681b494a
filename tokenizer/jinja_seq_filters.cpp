// The filters that regroup a sequence (declared in tokenizer/jinja_builtins.h): batch, slice and groupby, as jinja2
// defines them.
#include <algorithm>
#include <utility>

#include "tokenizer/jinja_builtins.h"

namespace qsft::jinja::seq {

// batch(n, fill_with=None): a generator of lists of n items (the last padded with fill_with when given).
Value batch(const Value& x, const CallArgs& a) {
  const Value* n = a.get(0, "linecount");
  if (!n || !n->is_integer() || n->i < 1) throw TemplateError("batch needs a line count >= 1");
  const Value* fill = a.get(1, "fill_with");
  List out, row;
  for (const Value& item : iterate(x)) {
    if (int64_t(row.size()) == n->i) out.push_back(Value::list(std::exchange(row, {})));
    row.push_back(item);
  }
  if (!row.empty()) {
    if (fill && !fill->is_none()) row.resize(size_t(n->i), *fill);
    out.push_back(Value::list(std::move(row)));
  }
  return Value::generator(std::move(out));
}

// slice(n, fill_with=None): a generator of n lists, the first len % n of them one item longer (the others padded
// with fill_with when given).
Value slice(const Value& x, const CallArgs& a) {
  const Value* n = a.get(0, "slices");
  if (!n || !n->is_integer() || n->i < 1) throw TemplateError("slice needs a slice count >= 1");
  const Value* fill = a.get(1, "fill_with");
  const List items = iterate(x);
  const int64_t per = int64_t(items.size()) / n->i, extra = int64_t(items.size()) % n->i;
  List out;
  for (int64_t k = 0, begin = 0; k < n->i; ++k) {
    const int64_t end = begin + per + (k < extra);
    List part(items.begin() + begin, items.begin() + end);
    if (fill && !fill->is_none() && k >= extra) part.push_back(*fill);
    out.push_back(Value::list(std::move(part)));
    begin = end;
  }
  return Value::generator(std::move(out));
}

// groupby(attribute, default=None, case_sensitive=False): the items sorted by the attribute (default where it is
// undefined; lower-cased strings unless case_sensitive) and grouped by equal keys, as (grouper, list) tuples; without
// case_sensitive the grouper is the first item's own value.
Value groupby(const Value& x, const CallArgs& a) {
  const Value* attr = a.get(0, "attribute");
  if (!attr) throw TemplateError("groupby needs an attribute");
  const Value* fallback = a.get(1, "default");
  const Value* case_sensitive = a.get(2, "case_sensitive");
  const bool cs = case_sensitive && case_sensitive->truthy();
  auto value_of = [&](const Value& item) {
    Value v = attr->is_integer() ? get_item(item, *attr) : attribute_of(item, str(*attr));
    return v.is_undefined() && fallback ? *fallback : v;
  };
  List items = iterate(x);
  std::stable_sort(items.begin(), items.end(), [&](const Value& p, const Value& q) {
    return less(sort_key(value_of(p), cs), sort_key(value_of(q), cs));
  });
  List groups;
  for (size_t begin = 0, end; begin < items.size(); begin = end) {
    const Value key = sort_key(value_of(items[begin]), cs);
    for (end = begin + 1; end < items.size() && equal(sort_key(value_of(items[end]), cs), key);) ++end;
    Value group =
        Value::list({value_of(items[begin]), Value::list(List(items.begin() + begin, items.begin() + end))}, true);
    group.is_group = true;
    groups.push_back(std::move(group));
  }
  return Value::list(std::move(groups));
}

}  // namespace qsft::jinja::seq
