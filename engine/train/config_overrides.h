// `--set a.b=value` on a JSON config: the value replaces (or adds) key b of object a, creating objects on the way.
// A value that parses as JSON (5, 1e-4, true, null, [..], "quoted") is used as such; anything else is a string.
#pragma once
#include <string>
#include <vector>

namespace qsft {

// Returns the config text with every override applied (later overrides win). `where` names the config file.
std::string apply_overrides(const std::string& json_text, const std::vector<std::string>& overrides,
                            const std::string& where);

}  // namespace qsft
