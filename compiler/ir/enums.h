// The enumerations the compiler hands the runtime, with their spellings, declared once in enums.def.
//
// An enumeration stays an enumeration from the checker to the trainer: a schedule is `ir::Schedule::Cosine`
// in sema's checked stage, in the train node's payload and in the runtime's learning-rate function, and its
// spelling (`cosine`) exists only here, for .fuse text and the IR's JSON view. The header depends on nothing
// but the standard library, so sema (which takes its enum types' values from here), the IR and the runtime
// can all include it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace fusec::ir {

// The enumerations: each FUSEC_ENUM closes the previous enum's brace and opens its own, so the values of
// enums.def become `enum class Schedule : uint8_t { Constant, Linear, Cosine, };` and so on (the first one
// closes a placeholder).
#define FUSEC_ENUM(Type, Name) \
  }                            \
  ;                            \
  enum class Type : uint8_t {
#define FUSEC_ENUM_VALUE(Type, Value, Spelling) Value,
enum class EnumsDefPlaceholder : uint8_t {
#include "compiler/ir/enums.def"
};
#undef FUSEC_ENUM
#undef FUSEC_ENUM_VALUE

template <typename E>
struct EnumTraits;

#define FUSEC_ENUM(Type, Name)                                \
  template <>                                                 \
  struct EnumTraits<Type> {                                   \
    static constexpr std::string_view name = Name;            \
    static std::span<const std::string_view> Spellings();     \
  };
#define FUSEC_ENUM_VALUE(Type, Value, Spelling)
#include "compiler/ir/enums.def"
#undef FUSEC_ENUM
#undef FUSEC_ENUM_VALUE

/// `cosine`, `over sources`' `sources`, `per group of pair`.
template <typename E>
std::string_view Spelling(E value) {
  return EnumTraits<E>::Spellings()[static_cast<size_t>(value)];
}

/// The value spelled `text`, or nullopt: where .fuse text becomes an enumeration (sema, and nowhere later).
template <typename E>
std::optional<E> EnumBySpelling(std::string_view text) {
  std::span<const std::string_view> spellings = EnumTraits<E>::Spellings();
  for (size_t i = 0; i < spellings.size(); ++i) {
    if (spellings[i] == text) return static_cast<E>(i);
  }
  return std::nullopt;
}

/// The value at `index` in declaration order (sema's enum values are indexes), or nullopt out of range.
template <typename E>
std::optional<E> EnumAt(size_t index) {
  if (index >= EnumTraits<E>::Spellings().size()) return std::nullopt;
  return static_cast<E>(index);
}

/// Whether a group unit (`per group of ...`).
inline bool IsGroupUnit(Unit unit) { return unit == Unit::GroupOfResponses || unit == Unit::GroupOfPairs; }

}  // namespace fusec::ir
