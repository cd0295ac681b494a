// What Jinja templates can call, with the semantics jinja2 and Python give them under transformers' chat
// template environment (an immutable sandbox: methods that modify lists and dicts are refused):
//   filters (jinja_filters.cpp), tests (jinja_tests.cpp), Python methods of str, dict and list, attribute and
//   item access, and the global functions range, namespace, dict, raise_exception and strftime_now
//   (jinja_methods.cpp), and the str operations they share (jinja_strings.cpp).
// Errors are TemplateError without a line; the evaluator adds the line.
// Known differences from jinja2 (each fails loudly or is rare in chat templates): the jinja2 filters striptags,
// wordwrap, urlencode, urlize, xmlattr, pprint, random, filesizeformat and the global lipsum fail when run;
// the str methods swapcase, casefold, istitle, expandtabs, translate and encode are missing; upper/lower use simple
// case mapping ('ß'.upper() is 'ẞ', Python's 'SS'); ints are 64-bit (overflow is an error; larger literals print);
// a generator made from another consumes it when made, not lazily; d.items()/keys()/values() are lists; macros have
// no attributes (name, arguments); a Markup's % with %r escapes the argument before repr.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace qsft::jinja {

Value call_filter(std::string_view name, const Value& input, CallArgs& args);
// item's attribute by jinja2's attribute getter: "a.b.0", each part looked up with getitem.
Value attribute_of(const Value& item, const std::string& path);
// The key sort, unique and groupby compare: strings lower-cased unless case_sensitive.
Value sort_key(const Value& v, bool case_sensitive);
// The filters that regroup a sequence (jinja_seq_filters.cpp), as generators (batch, slice) or a list (groupby).
namespace seq {
Value batch(const Value& x, const CallArgs& a);    // batch(linecount, fill_with=None)
Value slice(const Value& x, const CallArgs& a);    // slice(slices, fill_with=None)
Value groupby(const Value& x, const CallArgs& a);  // groupby(attribute, default=None, case_sensitive=False)
}  // namespace seq
bool call_test(std::string_view name, const Value& input, CallArgs& args);
// Whether the engine has the filter or test.
bool has_filter(std::string_view name);
bool has_test(std::string_view name);
// Whether jinja2 has it (the engine's and the jinja2 filters it lacks): the parser refuses the others, as jinja2 does
// when it compiles; a filter only jinja2 has fails when it runs.
bool jinja2_has_filter(std::string_view name);

// obj.name as jinja2's sandbox resolves it: a method of str/list/dict (bound), else (with keys) the dict key, else
// undefined. Attribute access on undefined is an error ("'x' is undefined").
Value get_attr(const Value& obj, const std::string& name, bool keys = true);
// obj[key]: list/str index (negative from the end), dict key, else the attribute key names, else undefined.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] of a list or str (null parts are the defaults).
Value get_slice(const Value& obj, const Value* start, const Value* stop, const Value* step);
// obj.name(args) for the Python methods of str, dict and list; nullopt-like undefined when obj has no such method.
bool call_method(const Value& obj, std::string_view name, CallArgs& args, Value& result);
// The str methods (jinja_str_methods.cpp): false when str has no method `name`.
bool string_method(const Value& obj, std::string_view name, CallArgs& args, Value& result);
// A global function (range, namespace, dict, raise_exception, strftime_now), or undefined.
Value global(const std::string& name);

// The items of a for loop or filter input: list items, dict keys, str characters; undefined iterates as empty.
List iterate(const Value& v);
// len(v) for str (code points), list and dict; undefined has length 0.
int64_t length(const Value& v);
// `needle in haystack`.
bool contains(const Value& haystack, const Value& needle);
// a op b for + - * / // % ** ~.
Value binary_op(std::string_view op, const Value& a, const Value& b);
// TemplateError with jinja2's UndefinedError message ("'name' is undefined").
[[noreturn]] void undefined_error(const Value& v);
// The undefined value of a missing variable.
Value undefined_name(const std::string& name);

// Python str operations on UTF-8 text.
namespace pystr {
bool is_space(char32_t cp);
bool is_alpha(char32_t cp);  // str.isalpha() of one code point (a letter)
bool is_alnum(char32_t cp);  // str.isalnum() of one code point (a letter or a number)
std::string strip(std::string_view s, const Value* chars, bool left, bool right);
std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);       // str.title()
std::string capitalize(std::string_view s);  // str.capitalize()
bool is_lower(std::string_view s);           // str.islower(): a cased character and none upper or title case
bool is_upper(std::string_view s);           // str.isupper()
List split(std::string_view s, const Value* sep, int64_t maxsplit);
List rsplit(std::string_view s, const Value* sep, int64_t maxsplit);
std::string replace(std::string_view s, std::string_view old, std::string_view with, int64_t count);
std::string format(std::string_view fmt, const CallArgs& args);  // str.format with {}, {0}, {name}
std::string percent(std::string_view fmt, const Value& args);    // fmt % args: %s %r %d %i %x %o %f %e %g %%
// fmt % args as a value: a Markup fmt escapes the arguments (escape_arg) and gives a Markup.
Value percent_value(const Value& fmt, const Value& args);
int64_t code_points(std::string_view s);
std::vector<size_t> code_point_offsets(std::string_view s);  // byte offset of each code point, then s.size()
// s padded with fill (one code point) to width code points: align '<' (left), '>' (right), '^' (centred, the odd
// space right: format specs) or 'c' (str.center's split: the odd space left when width is odd).
std::string pad(std::string_view s, int64_t width, std::string_view fill, char align);
// An integer argument (bool counts), fallback when absent or None; TemplateError naming `what` otherwise.
int64_t int_arg(const Value* v, int64_t fallback, const char* what);
// The str argument at index (or keyword name); TemplateError naming it otherwise.
const std::string& str_arg(const CallArgs& args, size_t index, const char* name);
std::string html_escape(std::string_view s);  // markupsafe's escape: & < > " ' as &amp; &lt; &gt; &#34; &#39;
// What markupsafe does to a value meeting a Markup (its %, format, join, the str arguments of its methods): a str
// that is not Markup is escaped; with `objects`, every other value but a number too, as its str().
Value escape_arg(const Value& v, bool objects);
}  // namespace pystr

}  // namespace qsft::jinja
