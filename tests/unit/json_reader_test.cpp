// The one JSON reader (engine/base/json_reader.h): each error names the file and the key path and says what was
// expected and what was found; files we define refuse unknown keys, files others write read absent or null as the
// default.
#include "engine/base/json_reader.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

namespace qsft {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(JsonReader, TypedReadsNameTheKeyAndWhatWasFound) {
  const json::Document doc("f.json", R"({"n": 3, "x": 2.5, "s": "hi", "b": true, "l": ["a", 1], "big": 9})");
  const json::Object o = doc.object();
  EXPECT_EQ(o.integer("n"), 3);
  EXPECT_EQ(o.number("n"), 3.0);  // an integer is a number
  EXPECT_EQ(o.number("x", 0.0), 2.5);
  EXPECT_EQ(o.string("s", ""), "hi");
  EXPECT_TRUE(o.boolean("b", false));
  EXPECT_EQ(error_of([&] { o.integer("x"); }), "f.json: key \"x\" must be an integer, got a fractional number");
  EXPECT_EQ(error_of([&] { o.number("s"); }), "f.json: key \"s\" must be a number, got a string");
  EXPECT_EQ(error_of([&] { o.boolean("n", false); }), "f.json: key \"n\" must be true or false, got an integer");
  EXPECT_EQ(error_of([&] { o.strings("l"); }), "f.json: key \"l\" must be a list of strings, holds an integer");
  EXPECT_EQ(error_of([&] { o.integer("absent"); }), "f.json: missing key \"absent\"");
  EXPECT_EQ(error_of([&] { o.reader("big").count(*o.get("big"), 1, 8); }), "f.json: key \"big\" must be <= 8, got 9");
  EXPECT_EQ(error_of([&] {
              o.reader("s").one_of(*o.get("s"), {"a", "b"});
            }),
            "f.json: key \"s\" is \"hi\"; valid values: a, b");
}

TEST(JsonReader, AbsentOrNullIsTheDefaultInFilesOthersWrite) {
  const json::Document doc("config.json", R"({"a": null, "rope": {"factor": "x"}})");
  const json::Object o = doc.object();
  EXPECT_EQ(o.number("a", 7.0), 7.0);
  EXPECT_TRUE(o.is_null("a"));
  EXPECT_FALSE(o.get("missing").has_value());
  EXPECT_EQ(o.opt_integer("a"), std::nullopt);
  const auto rope = o.object("rope");
  ASSERT_TRUE(rope.has_value());
  EXPECT_EQ(error_of([&] { rope->number("factor", 1.0); }),
            "config.json: key \"rope.factor\" must be a number, got a string");
}

TEST(JsonReader, SectionRefusesUnknownKeysNamingTheNearest) {
  const json::Document doc("cfg.json", R"({"training": {"learning_rat": 1}})");
  json::Section top("cfg.json", "");
  double lr = 0;
  top.key("training", [&](json::element v) {
    json::Section s("cfg.json", "training");
    s.key("learning_rate", [&](json::element x) { lr = s.reader("learning_rate").positive(x); });
    s.key("seed", [](json::element) {});
    s.parse(v);
  });
  EXPECT_EQ(error_of([&] { top.parse(doc.root()); }),
            "cfg.json: unknown key \"training.learning_rat\" (did you mean \"training.learning_rate\"?)");
  const json::Document far("cfg.json", R"({"zzzzzz": 1})");
  EXPECT_EQ(error_of([&] { top.parse(far.root()); }), "cfg.json: unknown key \"zzzzzz\" (valid keys: training)");
  const json::Document ok("cfg.json", R"({"training": {"learning_rate": 0.5}})");
  top.parse(ok.root());
  EXPECT_EQ(lr, 0.5);
  const json::Document list("cfg.json", "[1]");
  EXPECT_EQ(error_of([&] { top.parse(list.root()); }), "cfg.json: the file must be an object, got a list");
}

TEST(JsonReader, InvalidJsonNamesTheFile) {
  EXPECT_EQ(error_of([] { json::Document("x.json", "{oops"); }).rfind("x.json: invalid JSON", 0), 0u);
  EXPECT_EQ(error_of([] { json::Document("x.json", "[]").object(); }), "x.json: must be a JSON object, got a list");
  EXPECT_EQ(error_of([] { json::read_text_file("/nonexistent/x.json"); }), "/nonexistent/x.json: cannot read the file");
}

}  // namespace
}  // namespace qsft
