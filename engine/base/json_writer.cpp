#include "engine/base/json_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include "engine/base/error.h"
#include "engine/base/json_text.h"
#include "engine/base/sync_dir.h"

namespace qsft {
namespace {

// JSON has no NaN or infinity: they print as null.
template <class F>
void append_float(std::string& out, F v) {
  if (std::isfinite(v))
    append_python_float(out, v);
  else
    out += "null";
}

void newline(std::string& out, const JsonStyle& style, int depth) {
  if (style.indent < 0) return;
  out += '\n';
  out.append(size_t(style.indent) * size_t(depth), ' ');
}

}  // namespace

Json& Json::push(Json item) {
  QSFT_CHECK(std::holds_alternative<Array>(v_), "Json::push on a value that is not an array");
  std::get<Array>(v_).push_back(std::move(item));
  return *this;
}

Json& Json::set(std::string_view key, Json value) {
  QSFT_CHECK(std::holds_alternative<Object>(v_), "Json::set on a value that is not an object");
  auto& members = std::get<Object>(v_);
  auto it = std::find_if(members.begin(), members.end(), [&](auto& m) { return m.first == key; });
  if (it != members.end())
    it->second = std::move(value);
  else
    members.emplace_back(std::string(key), std::move(value));
  return *this;
}

std::string Json::dump(const JsonStyle& style) const {
  std::string out;
  dump_to(out, style, 0);
  return out;
}

void Json::dump_to(std::string& out, const JsonStyle& style, int depth) const {
  if (std::holds_alternative<std::nullptr_t>(v_)) {
    out += "null";
  } else if (auto* b = std::get_if<bool>(&v_)) {
    out += *b ? "true" : "false";
  } else if (auto* i = std::get_if<int64_t>(&v_)) {
    out += std::to_string(*i);
  } else if (auto* f = std::get_if<float>(&v_)) {
    append_float(out, *f);
  } else if (auto* d = std::get_if<double>(&v_)) {
    append_float(out, *d);
  } else if (auto* s = std::get_if<std::string>(&v_)) {
    append_json_string(out, *s);
  } else if (auto* items = std::get_if<Array>(&v_)) {
    out += '[';
    for (size_t k = 0; k < items->size(); ++k) {
      if (k) out += ',';
      newline(out, style, depth + 1);
      (*items)[k].dump_to(out, style, depth + 1);
    }
    if (!items->empty()) newline(out, style, depth);
    out += ']';
  } else {
    const auto& members = std::get<Object>(v_);
    std::vector<const std::pair<std::string, Json>*> order;
    for (auto& m : members) order.push_back(&m);
    if (style.sort_keys) std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->first < b->first; });
    out += '{';
    for (size_t k = 0; k < order.size(); ++k) {
      if (k) out += ',';
      newline(out, style, depth + 1);
      append_json_string(out, order[k]->first);
      out += style.indent < 0 ? ":" : ": ";
      order[k]->second.dump_to(out, style, depth + 1);
    }
    if (!order.empty()) newline(out, style, depth);
    out += '}';
  }
}

void write_file_atomic(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write) {
  std::filesystem::path tmp = path;
  tmp += ".tmp" + std::to_string(::getpid());  // one per process: two writers never share a temporary
  auto fail = [&](const std::string& what) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    return input_error(path.string(), what);
  };
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw fail("cannot open " + tmp.string() + " for writing: " + std::strerror(errno));
    try {
      write(f);
      f.flush();
    } catch (...) {
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      throw;
    }
    if (!f) throw fail("writing " + tmp.string() + " failed (disk full?)");
  }
  // Flush the data to disk before the rename makes it visible, so a crash never leaves a short file at `path`.
  int fd = ::open(tmp.c_str(), O_RDONLY);
  int err = fd < 0 ? errno : (::fsync(fd) == 0 ? 0 : errno);
  if (fd >= 0) ::close(fd);
  if (err) throw fail("cannot flush " + tmp.string() + " to disk: " + std::strerror(err));
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw fail("cannot rename " + tmp.string() + " to it: " + ec.message());
  if (int e = sync_directory(path.parent_path()))
    throw fail(std::string("cannot flush its folder to disk: ") + std::strerror(e));
}

void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  write_file_atomic(path, [&](std::ostream& out) { out.write(content.data(), std::streamsize(content.size())); });
}

}  // namespace qsft
