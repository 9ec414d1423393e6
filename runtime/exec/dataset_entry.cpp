// Datasets as stage-cache entries (dataset_entry.h).

#include "runtime/exec/dataset_entry.h"

#include "runtime/data/jsonl.h"
#include "runtime/data/jsonl_writer.h"
#include "runtime/support/run_error.h"

namespace fusec::rt {

void WriteDatasetEntry(const std::filesystem::path& staging, const Dataset& records) {
  std::string error;
  if (!WriteRecordsJsonl((staging / kDatasetEntryFile).string(), records, &error)) {
    throw RunError(RunErrorKind::FileSystem, error);
  }
}

std::shared_ptr<const Dataset> ReadDatasetEntry(const std::string& entry) {
  const std::string path = entry + "/" + kDatasetEntryFile;
  JsonlOptions options;
  options.require_responses = false;
  std::string error;
  auto reader = JsonlReader::Open(path, options, &error);
  if (!reader) throw RunError(RunErrorKind::CacheEntry, "its cache entry is unreadable (" + error + ")").Place(entry);
  auto records = std::make_shared<Dataset>();
  PromptRecord record;
  while (reader->Next(&record)) records->push_back(std::move(record));
  if (!reader->error().empty()) {
    throw RunError(RunErrorKind::CacheEntry, "its cache entry is unreadable (" + reader->error() + ")").Place(entry);
  }
  return records;
}

}  // namespace fusec::rt
