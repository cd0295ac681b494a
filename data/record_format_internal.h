// The conversion of a parsed record (simdjson) to an Example, per record format (data/record_format.h).
// Internal to data/ (.cpp files only: simdjson).
#pragma once
#include <simdjson.h>

#include "data/example.h"
#include "data/record_format.h"

namespace qsft {

// The format whose keys the record has; InputError listing the keys when none fits.
RecordFormat detect_format(simdjson::dom::element record);

// The example a record of format f describes. Bad records: InputError "field: reason" (the caller adds where).
Example to_example(RecordFormat f, simdjson::dom::element record, const Templates& templates);

// Format conversions (format_messages.cpp, format_text.cpp).
Example messages_example(simdjson::dom::element record);
Example sharegpt_example(simdjson::dom::element record);
Example alpaca_example(simdjson::dom::element record);
Example prompt_completion_example(simdjson::dom::element record);
Example text_example(simdjson::dom::element record);
Example templated_example(simdjson::dom::element record, const Templates& templates);
Example tokens_example(simdjson::dom::element record);

}  // namespace qsft
