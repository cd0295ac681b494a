#include "engine/train/config_overrides.h"

#include <simdjson.h>

#include <map>

#include "engine/base/error.h"
#include "engine/base/json_writer.h"

namespace qsft {

namespace {

using Overrides = std::map<std::string, Json>;  // dotted path -> value

Json to_json(simdjson::dom::element e, const std::string& path, const Overrides& ov);

// Overrides whose path is prefix + "." + key with no further dot, for keys the object does not have yet, and
// overrides deeper below a missing key (which create the objects on the way).
void add_missing(Json& obj, const std::string& prefix, const std::vector<std::string>& present, const Overrides& ov) {
  std::map<std::string, Overrides> nested;  // missing child key -> its overrides, re-rooted
  for (const auto& [path, value] : ov) {
    const std::string head = prefix.empty() ? "" : prefix + ".";
    if (path.rfind(head, 0) != 0) continue;
    const std::string rest = path.substr(head.size());
    const std::string key = rest.substr(0, rest.find('.'));
    if (std::find(present.begin(), present.end(), key) != present.end()) continue;
    if (key == rest)
      obj.set(key, value);
    else
      nested[key][rest.substr(key.size() + 1)] = value;
  }
  for (auto& [key, sub] : nested) {
    Json child = Json::object();
    add_missing(child, "", {}, sub);
    obj.set(key, child);
  }
}

Json to_json(simdjson::dom::element e, const std::string& path, const Overrides& ov) {
  if (auto it = ov.find(path); it != ov.end() && !path.empty()) return it->second;
  if (!path.empty() && !e.is_object())
    for (const auto& [key, _] : ov)
      if (key.rfind(path + ".", 0) == 0)
        throw InputError("--set " + key + ": " + path + " is not an object, so it has no key " +
                         key.substr(path.size() + 1));
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      Json obj = Json::object();
      std::vector<std::string> present;
      for (auto field : e.get_object()) {
        std::string key(field.key);
        present.push_back(key);
        obj.set(key, to_json(field.value, path.empty() ? key : path + "." + key, ov));
      }
      add_missing(obj, path, present, ov);
      return obj;
    }
    case simdjson::dom::element_type::ARRAY: {
      Json arr = Json::array();
      for (simdjson::dom::element x : e.get_array()) arr.push(to_json(x, path + "[]", ov));
      return arr;
    }
    case simdjson::dom::element_type::STRING: return Json(std::string_view(e.get_string()));
    case simdjson::dom::element_type::INT64: return Json(int64_t(e.get_int64()));
    case simdjson::dom::element_type::UINT64: return Json(uint64_t(e.get_uint64()));
    case simdjson::dom::element_type::DOUBLE: return Json(double(e.get_double()));
    case simdjson::dom::element_type::BOOL: return Json(bool(e.get_bool()));
    case simdjson::dom::element_type::NULL_VALUE: return Json(nullptr);
  }
  return Json(nullptr);
}

}  // namespace

std::string apply_overrides(const std::string& json_text, const std::vector<std::string>& overrides,
                            const std::string& where) {
  if (overrides.empty()) return json_text;
  simdjson::dom::parser parser;
  Overrides ov;
  for (const std::string& o : overrides) {
    const size_t eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw InputError("--set " + o + ": expected key.path=value (for example training.learning_rate=1e-4)");
    const std::string key = o.substr(0, eq), text = o.substr(eq + 1);
    simdjson::dom::element v;
    simdjson::padded_string padded(text);
    ov[key] = parser.parse(padded).get(v) ? Json(text) : to_json(v, "", {});
  }
  simdjson::dom::element root;
  simdjson::padded_string padded(json_text);
  if (parser.parse(padded).get(root) || !root.is_object()) throw input_error(where, "not a JSON object");
  return to_json(root, "", ov).dump({2, false});
}

}  // namespace qsft
