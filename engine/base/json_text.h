// JSON text as Python writes it: json.dumps(value, ensure_ascii=False) with the default separators (", " and
// ": ") and the keys in their input order. This is what the `tojson` filter of Hugging Face chat templates
// produces, so re-serialised tools and tool-call arguments render byte for byte as with jinja2.
#pragma once
#include <string>
#include <string_view>

namespace qsft {

// The JSON text json re-serialised; InputError (naming `where`) when it is not valid JSON.
std::string python_json(std::string_view json, const std::string& where);

// Appends s (valid UTF-8) to out as a JSON string literal, escaped as json.dumps(ensure_ascii=False) does.
void append_json_string(std::string& out, std::string_view s);

// Appends x (finite) as Python's repr prints it: the shortest digits that read back as the same value (of x's
// own type), positional for exponents in [-4, 16) with at least ".0", else d.ddde+XX (1e-06, 1000000.0, 1e+16).
void append_python_float(std::string& out, double x);
void append_python_float(std::string& out, float x);

}  // namespace qsft
