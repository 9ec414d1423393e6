#include "compiler/ir/enums.h"

#include <array>

namespace fusec::ir {
namespace {

// The spellings of each enumeration, from enums.def.
#define FUSEC_ENUM(Type, Name)
#define FUSEC_ENUM_VALUE(Type, Value, Spelling) {#Type, Spelling},
struct Row {
  std::string_view type;
  std::string_view spelling;
};
constexpr Row kRows[] = {
#include "compiler/ir/enums.def"
};
#undef FUSEC_ENUM
#undef FUSEC_ENUM_VALUE

template <size_t N>
constexpr std::array<std::string_view, N> SpellingsOf(std::string_view type) {
  std::array<std::string_view, N> out{};
  size_t n = 0;
  for (const Row& row : kRows) {
    if (row.type == type && n < N) out[n++] = row.spelling;
  }
  return out;
}

constexpr size_t CountOf(std::string_view type) {
  size_t n = 0;
  for (const Row& row : kRows) n += row.type == type ? 1 : 0;
  return n;
}

}  // namespace

#define FUSEC_ENUM_VALUE(Type, Value, Spelling)
#define FUSEC_ENUM(Type, Name)                                                                      \
  std::span<const std::string_view> EnumTraits<Type>::Spellings() {                                 \
    static constexpr auto spellings = SpellingsOf<CountOf(#Type)>(#Type);                           \
    return spellings;                                                                               \
  }
#include "compiler/ir/enums.def"
#undef FUSEC_ENUM
#undef FUSEC_ENUM_VALUE

}  // namespace fusec::ir
