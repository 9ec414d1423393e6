// The types of .fuse values.
//
// A small structural type system: scalars, lists, records and enums, plus one opaque kind per thing an
// experiment is built from (models, datasets, rules, objectives, ...). Types are immutable and shared; the
// common ones are singletons, so most comparisons are pointer comparisons. Numbers that depend on the data
// (a loss, a weight) still have type float or bool: *where* they vary (per response, per pair, per group)
// is the Term's level (term.h), not part of the type.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fusec::sema {

enum class TypeKind : uint8_t {
#define FUSEC_TYPE_KIND(Name, Spelling) Name,
#include "compiler/sema/type_kind.def"
#undef FUSEC_TYPE_KIND
};

/// The enums the language knows; their values are builtin names (`cosine`, `bf16`, `llama3`, ...).
enum class EnumKind : uint8_t { Schedule, Precision, ChatTemplate, BadLines, Device, Shard };

struct EnumInfo {
  EnumKind kind;
  std::string_view name;                 // the type's name: `schedule`
  std::vector<std::string_view> values;  // its values, in declaration order
};
const EnumInfo& GetEnumInfo(EnumKind kind);
const std::vector<EnumInfo>& AllEnums();

struct Type;
using TypeRef = std::shared_ptr<const Type>;

struct Type {
  TypeKind kind;
  TypeRef element;                                    // List
  std::vector<std::pair<std::string, TypeRef>> fields;  // Record, in declaration order
  EnumKind enum_kind = EnumKind::Schedule;            // Enum
};

namespace types {
TypeRef Error();
TypeRef None();
TypeRef Int();
TypeRef Float();
TypeRef Bool();
TypeRef String();
TypeRef Opaque(TypeKind kind);  // Model, Dataset, Objective, ... (no structure)
TypeRef List(TypeRef element);
TypeRef Record(std::vector<std::pair<std::string, TypeRef>> fields);
TypeRef Enum(EnumKind kind);
}  // namespace types

/// `float`, `list[int]`, `{sft: dataset, po: dataset}`, `schedule`.
std::string ToString(const Type& type);
inline std::string ToString(const TypeRef& type) { return ToString(*type); }

bool IsNumeric(const Type& type);
bool IsError(const Type& type);

/// Whether a value of type `from` can be used where `to` is expected: equal types, int where float is
/// expected (also inside lists and records), and the error type anywhere (it has been reported).
bool IsAssignable(const Type& from, const Type& to);
/// The common type of two branches or list elements (int and float give float), or null if none.
TypeRef Join(const TypeRef& a, const TypeRef& b);

/// The type named by a parameter annotation (`float`, `objective`, `schedule`), or null. Lists and records
/// are built by the caller from their parts.
TypeRef TypeByName(std::string_view name);
/// The names TypeByName accepts, for suggestions.
std::vector<std::string> TypeNames();

}  // namespace fusec::sema
