// The JSON writer (engine/base/json_writer.h): compact and Python-style indented output, string escaping and
// numbers printed as Python's json.dumps prints them.
#include "engine/base/json_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace qsft {
namespace {

TEST(JsonWriter, CompactAndPythonStyleIndentedSortedOutput) {
  Json j = Json::object()
               .set("b", Json::array({1, 2, Json::object().set("z", nullptr).set("a", true)}))
               .set("a", "x")
               .set("e", Json::array())
               .set("d", Json::object());
  EXPECT_EQ(j.dump(), R"({"b":[1,2,{"z":null,"a":true}],"a":"x","e":[],"d":{}})");
  // json.dumps(same, indent=2, sort_keys=True) in Python:
  EXPECT_EQ(j.dump({.indent = 2, .sort_keys = true}),
            "{\n  \"a\": \"x\",\n  \"b\": [\n    1,\n    2,\n    {\n      \"a\": true,\n      \"z\": null\n    }\n"
            "  ],\n  \"d\": {},\n  \"e\": []\n}");
}

TEST(JsonWriter, SetReplacesAKeyInPlace) {
  Json j = Json::object().set("a", 1).set("b", 2).set("a", "one");
  EXPECT_EQ(j.dump(), R"({"a":"one","b":2})");
}

TEST(JsonWriter, EscapesStringsAndPassesUtf8Through) {
  EXPECT_EQ(Json("q\"b\\n\nt\tr\rc\x01\x1f é 中").dump(), R"("q\"b\\n\nt\tr\rc\u0001\u001f é 中")");
  EXPECT_EQ(Json(std::string("nul\0x", 5)).dump(), R"("nul\u0000x")");
}

TEST(JsonWriter, NumbersPrintLikePythonAndReadBackExactly) {
  // Expected strings are Python's repr of the same doubles.
  std::vector<std::pair<double, const char*>> doubles = {{0.0, "0.0"},
                                                         {-0.0, "-0.0"},
                                                         {1e-6, "1e-06"},
                                                         {1e6, "1000000.0"},
                                                         {0.1, "0.1"},
                                                         {1e16, "1e+16"},
                                                         {1e15, "1000000000000000.0"},
                                                         {-2.5e-5, "-2.5e-05"},
                                                         {3.0, "3.0"},
                                                         {0.0001, "0.0001"},
                                                         {1.5e300, "1.5e+300"},
                                                         {5e-324, "5e-324"},
                                                         {123456789012345680.0, "1.2345678901234568e+17"},
                                                         {9.5367431640625e-07, "9.5367431640625e-07"}};
  for (auto& [v, text] : doubles) EXPECT_EQ(Json(v).dump(), text) << text;
  EXPECT_EQ(Json(0.1f).dump(), "0.1");  // shortest text for the float, not for the double it widens to
  EXPECT_EQ(Json(3.0f).dump(), "3.0");
  EXPECT_EQ(Json(std::numeric_limits<double>::quiet_NaN()).dump(), "null");
  EXPECT_EQ(Json(-INFINITY).dump(), "null");
  EXPECT_EQ(Json(int64_t(-9007199254740993)).dump(), "-9007199254740993");
  EXPECT_EQ(Json(uint64_t(42)).dump(), "42");
  EXPECT_THROW(Json(uint64_t(1) << 63), std::out_of_range);
  EXPECT_EQ(Json(false).dump(), "false");
}

}  // namespace
}  // namespace qsft
