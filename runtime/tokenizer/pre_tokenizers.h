// tokenizer.json's `pre_tokenizer`: one class per Hugging Face pre-tokenizer, each splitting the pieces of a
// normalized segment into smaller pieces that the model then tokenizes one by one.
//
// Every splitting pre-tokenizer goes through one function, SplitPiece, transcribed from Hugging Face's
// `NormalizedString::split`: a pattern marks the piece's bytes as matches and gaps, and the `behavior`
// (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous) says what becomes a piece. Empty pieces
// are dropped, as Hugging Face's PreTokenizedString drops them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/tokenizer/json_fields.h"
#include "runtime/tokenizer/pattern.h"

namespace fusec::rt::tok {

/// A piece of a segment. `at_start`: it begins where the whole input text begins (Metaspace's
/// `prepend_scheme: first` prepends only there, as Hugging Face looks at the original offset 0).
struct Piece {
  std::string text;
  bool at_start = false;
};

enum class SplitBehavior : uint8_t { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

/// The pieces `piece` splits into, given its matches (byte ranges, left to right, not overlapping).
void SplitPiece(const Piece& piece, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior behavior,
                bool invert, std::vector<Piece>& out);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void PreTokenize(std::vector<Piece>& pieces) const = 0;
};

/// Maps every byte to GPT-2's printable characters, after splitting with GPT-2's regex (`use_regex`) and
/// prefixing a space (`add_prefix_space`).
class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex);
  void PreTokenize(std::vector<Piece>& pieces) const override;

 private:
  bool add_prefix_space_;
  std::optional<Pattern> regex_;
};

class Split final : public PreTokenizer {
 public:
  Split(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(std::vector<Piece>& pieces) const override;

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

/// SentencePiece's spaces: ' ' becomes `replacement` (▁), which is prepended per `prepend_scheme`, and with
/// `split` each piece is cut before every replacement character.
class Metaspace final : public PreTokenizer {
 public:
  enum class PrependScheme : uint8_t { Always, First, Never };
  Metaspace(uint32_t replacement, PrependScheme scheme, bool split);
  void PreTokenize(std::vector<Piece>& pieces) const override;

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

/// Digits (Unicode's N categories, Rust's `char::is_numeric`), isolated one by one or as runs.
class Digits final : public PreTokenizer {
 public:
  explicit Digits(bool individual_digits);
  void PreTokenize(std::vector<Piece>& pieces) const override;

 private:
  Pattern digit_;
  bool individual_digits_;
};

/// Each punctuation character (ASCII punctuation or Unicode's P categories) split off per `behavior`.
class Punctuation final : public PreTokenizer {
 public:
  explicit Punctuation(SplitBehavior behavior);
  void PreTokenize(std::vector<Piece>& pieces) const override;

 private:
  Pattern punctuation_;
  SplitBehavior behavior_;
};

/// Words `\w+` and runs of other non-space characters `[^\w\s]+`; white space is removed.
class Whitespace final : public PreTokenizer {
 public:
  Whitespace();
  void PreTokenize(std::vector<Piece>& pieces) const override;

 private:
  Pattern word_;
};

/// Splits on white space (Rust's `char::is_whitespace`), which is removed.
class WhitespaceSplit final : public PreTokenizer {
 public:
  WhitespaceSplit();
  void PreTokenize(std::vector<Piece>& pieces) const override;

 private:
  Pattern space_;
};

class PreTokenizerSequence final : public PreTokenizer {
 public:
  explicit PreTokenizerSequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void PreTokenize(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->PreTokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

/// The pre-tokenizer `json` at `path`; throws TokenizerJsonError for a malformed field or a pre-tokenizer that
/// is not implemented.
std::unique_ptr<PreTokenizer> PreTokenizerFromJson(const Json& json, const std::string& path);

/// GPT-2's byte-to-character table: each byte maps to a printable Unicode character.
const std::vector<std::string>& ByteLevelChars();

}  // namespace fusec::rt::tok
