#include "runtime/tokenizer/pre_tokenizers.h"

#include "runtime/support/text.h"

namespace fusec::rt::tok {
namespace {

/// A byte range of a piece and whether the pattern matched it.
struct Span {
  size_t begin;
  size_t end;
  bool is_match;
};

/// Matches and the gaps between them, covering the whole text (Hugging Face's `Pattern::find_matches`).
std::vector<Span> Spans(size_t size, const std::vector<std::pair<size_t, size_t>>& matches, bool invert) {
  std::vector<Span> spans;
  if (size == 0) return {{0, 0, false}};
  size_t previous = 0;
  for (auto [begin, end] : matches) {
    if (previous != begin) spans.push_back({previous, begin, invert});
    spans.push_back({begin, end, !invert});
    previous = end;
  }
  if (previous != size) spans.push_back({previous, size, invert});
  return spans;
}

/// A range to keep (`remove` false) or drop.
struct Cut {
  size_t begin;
  size_t end;
  bool remove;
};

SplitBehavior BehaviorField(const Json& json, const std::string& path, const char* fallback) {
  const std::string behavior = StringField(json, "behavior", path + ".behavior", fallback);
  if (behavior == "Removed") return SplitBehavior::Removed;
  if (behavior == "Isolated") return SplitBehavior::Isolated;
  if (behavior == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (behavior == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (behavior == "Contiguous") return SplitBehavior::Contiguous;
  Malformed(path + ".behavior", "one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous",
            json["behavior"]);
}

template <typename Splitter>
void SplitEach(std::vector<Piece>& pieces, const Splitter& split) {
  std::vector<Piece> next;
  next.reserve(pieces.size());
  for (const Piece& piece : pieces) split(piece, next);
  pieces = std::move(next);
}

}  // namespace

void SplitPiece(const Piece& piece, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior behavior,
                bool invert, std::vector<Piece>& out) {
  std::vector<Span> spans = Spans(piece.text.size(), matches, invert);
  std::vector<Cut> cuts;
  cuts.reserve(spans.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (const Span& s : spans) cuts.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::Removed:
      for (const Span& s : spans) cuts.push_back({s.begin, s.end, s.is_match});
      break;
    case SplitBehavior::Contiguous:
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !cuts.empty()) {
          cuts.back().end = s.end;
        } else {
          cuts.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !cuts.empty()) {
          cuts.back().end = s.end;
        } else {
          cuts.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !cuts.empty()) {
          cuts.back().begin = it->begin;
        } else {
          cuts.push_back({it->begin, it->end, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(cuts.begin(), cuts.end());
      break;
  }
  for (const Cut& cut : cuts) {
    if (cut.remove || cut.end == cut.begin) continue;
    out.push_back({piece.text.substr(cut.begin, cut.end - cut.begin), piece.at_start && cut.begin == 0});
  }
}

const std::vector<std::string>& ByteLevelChars() {
  static const std::vector<std::string> alphabet = [] {
    std::vector<bool> printable(256, false);
    for (int b = '!'; b <= '~'; ++b) printable[static_cast<size_t>(b)] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[static_cast<size_t>(b)] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[static_cast<size_t>(b)] = true;
    uint32_t next = 256;
    std::vector<std::string> out(256);
    for (size_t b = 0; b < 256; ++b) AppendUtf8(out[b], printable[b] ? static_cast<uint32_t>(b) : next++);
    return out;
  }();
  return alphabet;
}

ByteLevel::ByteLevel(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
  if (use_regex) regex_ = Pattern::FromRegex(kGpt2Pattern, "GPT-2's pattern");
}

void ByteLevel::PreTokenize(std::vector<Piece>& pieces) const {
  const auto& chars = ByteLevelChars();
  SplitEach(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
    Piece source = piece;
    if (add_prefix_space_ && !source.text.starts_with(' ')) source.text.insert(0, " ");
    size_t first = out.size();
    if (regex_) {
      SplitPiece(source, regex_->FindAll(source.text), SplitBehavior::Isolated, false, out);
    } else if (!source.text.empty()) {
      out.push_back(std::move(source));
    }
    for (size_t i = first; i < out.size(); ++i) {
      std::string mapped;
      mapped.reserve(out[i].text.size() * 2);
      for (unsigned char c : out[i].text) mapped += chars[c];
      out[i].text = std::move(mapped);
    }
  });
}

void Split::PreTokenize(std::vector<Piece>& pieces) const {
  SplitEach(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
    SplitPiece(piece, pattern_.FindAll(piece.text), behavior_, invert_, out);
  });
}

Metaspace::Metaspace(uint32_t replacement, PrependScheme scheme, bool split) : scheme_(scheme), split_(split) {
  AppendUtf8(replacement_, replacement);
}

void Metaspace::PreTokenize(std::vector<Piece>& pieces) const {
  const Pattern space = Pattern::Literal(" ");
  const Pattern replacement = Pattern::Literal(replacement_);
  SplitEach(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
    Piece replaced{space.ReplaceAll(piece.text, replacement_), piece.at_start};
    const bool prepend = scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && piece.at_start);
    if (prepend && !replaced.text.starts_with(replacement_)) replaced.text.insert(0, replacement_);
    if (split_) {
      SplitPiece(replaced, replacement.FindAll(replaced.text), SplitBehavior::MergedWithNext, false, out);
    } else if (!replaced.text.empty()) {
      out.push_back(std::move(replaced));
    }
  });
}

Digits::Digits(bool individual_digits)
    : digit_(Pattern::FromRegex(R"(\p{N})", "Digits")), individual_digits_(individual_digits) {}

void Digits::PreTokenize(std::vector<Piece>& pieces) const {
  const SplitBehavior behavior = individual_digits_ ? SplitBehavior::Isolated : SplitBehavior::Contiguous;
  SplitEach(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
    SplitPiece(piece, digit_.FindAll(piece.text), behavior, false, out);
  });
}

Punctuation::Punctuation(SplitBehavior behavior)
    : punctuation_(Pattern::FromRegex(R"([\p{P}!-/:-@\[-`{-~])", "Punctuation")), behavior_(behavior) {}

void Punctuation::PreTokenize(std::vector<Piece>& pieces) const {
  SplitEach(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
    SplitPiece(piece, punctuation_.FindAll(piece.text), behavior_, false, out);
  });
}

// Oniguruma's Unicode \w (letters, marks, decimal digits, connector punctuation), written out: PCRE2's \w
// differs on marks and on other numbers.
Whitespace::Whitespace()
    : word_(Pattern::FromRegex(R"([\p{L}\p{M}\p{Nd}\p{Pc}]+|[^\p{L}\p{M}\p{Nd}\p{Pc}\s]+)", "Whitespace")) {}

void Whitespace::PreTokenize(std::vector<Piece>& pieces) const {
  SplitEach(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
    SplitPiece(piece, word_.FindAll(piece.text), SplitBehavior::Removed, /*invert=*/true, out);
  });
}

WhitespaceSplit::WhitespaceSplit() : space_(Pattern::FromRegex(R"(\p{White_Space})", "WhitespaceSplit")) {}

void WhitespaceSplit::PreTokenize(std::vector<Piece>& pieces) const {
  SplitEach(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
    SplitPiece(piece, space_.FindAll(piece.text), SplitBehavior::Removed, false, out);
  });
}

std::unique_ptr<PreTokenizer> PreTokenizerFromJson(const Json& json, const std::string& path) {
  const std::string type = ComponentType(json, path);
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevel>(BoolField(json, "add_prefix_space", path + ".add_prefix_space", true),
                                       BoolField(json, "use_regex", path + ".use_regex", true));
  }
  if (type == "Split") {
    const Json* pattern = Field(json, "pattern");
    if (pattern == nullptr) Refuse("`" + path + "` has no `pattern`");
    return std::make_unique<Split>(Pattern::FromJson(*pattern, path + ".pattern"),
                                   BehaviorField(json, path, "Isolated"),
                                   BoolField(json, "invert", path + ".invert", false));
  }
  if (type == "Metaspace") {
    const uint32_t replacement = CharField(json, "replacement", path + ".replacement", 0x2581);
    // Files from before `prepend_scheme` say `add_prefix_space` (true: always).
    const bool add_prefix_space = BoolField(json, "add_prefix_space", path + ".add_prefix_space", true);
    const std::string scheme = StringField(json, "prepend_scheme", path + ".prepend_scheme", add_prefix_space ? "always" : "never");
    Metaspace::PrependScheme parsed;
    if (scheme == "always") {
      parsed = Metaspace::PrependScheme::Always;
    } else if (scheme == "first") {
      parsed = Metaspace::PrependScheme::First;
    } else if (scheme == "never") {
      parsed = Metaspace::PrependScheme::Never;
    } else {
      Malformed(path + ".prepend_scheme", "one of always, first, never", json["prepend_scheme"]);
    }
    return std::make_unique<Metaspace>(replacement, parsed, BoolField(json, "split", path + ".split", true));
  }
  if (type == "Digits") return std::make_unique<Digits>(BoolField(json, "individual_digits", path + ".individual_digits", false));
  if (type == "Punctuation") return std::make_unique<Punctuation>(BehaviorField(json, path, "Isolated"));
  if (type == "Whitespace") return std::make_unique<Whitespace>();
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplit>();
  if (type == "Sequence") {
    const Json& list = ListField(json, "pretokenizers", path + ".pretokenizers");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(PreTokenizerFromJson(list[i], Indexed(path + ".pretokenizers", i)));
    return std::make_unique<PreTokenizerSequence>(std::move(steps));
  }
  Refuse("pre-tokenizer `" + type + "` is not supported (`" + path +
         "`; ByteLevel, Split, Metaspace, Digits, Punctuation, Whitespace, WhitespaceSplit and Sequence are)");
}

}  // namespace fusec::rt::tok
