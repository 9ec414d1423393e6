// Records back to JSONL: what the sampling and scoring steps write into their cache entries.
//
// Why: a sampled or scored dataset is a stage output like a trained model; it is committed to the stage cache
// as a JSONL file that JsonlReader (jsonl.h) reads back with the default field names, so a cached entry gives
// the very records the run that wrote it computed, and a researcher can open the file and read the samples.
// The line format is the one fusec reads: id, prompt or messages, responses [{source, text, reward}], gold,
// family; a response without a reward has no `reward` key.
#pragma once

#include <string>
#include <vector>

#include "runtime/data/jsonl.h"

namespace fusec::rt {

/// One JSON line (ending in "\n") for `record`, in the reader's default field names.
std::string RecordJsonLine(const PromptRecord& record);

/// Writes `records`, one line each, to `path` through a temporary file renamed over it, so a reader (or a
/// killed run) sees the old file or the whole new one. False with `error` when it cannot be written.
bool WriteRecordsJsonl(const std::string& path, const std::vector<PromptRecord>& records, std::string* error);

}  // namespace fusec::rt
