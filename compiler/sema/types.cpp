#include "compiler/sema/types.h"

#include <algorithm>
#include <array>
#include <span>

#include "compiler/ir/enums.h"

namespace fusec::sema {
namespace {

constexpr std::string_view kKindSpelling[] = {
#define FUSEC_TYPE_KIND(Name, Spelling) Spelling,
#include "compiler/sema/type_kind.def"
#undef FUSEC_TYPE_KIND
};

TypeRef MakeSingleton(TypeKind kind) {
  auto type = std::make_shared<Type>();
  type->kind = kind;
  return type;
}

// The kinds a parameter can be annotated with by name (the others are written structurally or not at all).
constexpr TypeKind kNamedKinds[] = {
    TypeKind::Int,       TypeKind::Float,        TypeKind::Bool,      TypeKind::String,
    TypeKind::Model,     TypeKind::Stage,        TypeKind::Dataset,      TypeKind::Optimizer, TypeKind::Evaluation,
    TypeKind::RewardModel,
    TypeKind::Selection, TypeKind::Pairing,      TypeKind::Grouping,  TypeKind::Weighting,
    TypeKind::Objective,
};

/// An enum type of the language with the values of the IR's enumeration E (compiler/ir/enums.def), so a
/// value's index is also its ir::E.
template <typename E>
EnumInfo Info(EnumKind kind) {
  std::span<const std::string_view> spellings = ir::EnumTraits<E>::Spellings();
  return EnumInfo{kind, ir::EnumTraits<E>::name, std::vector<std::string_view>(spellings.begin(), spellings.end())};
}

}  // namespace

const std::vector<EnumInfo>& AllEnums() {
  static const std::vector<EnumInfo> enums = {
      Info<ir::Schedule>(EnumKind::Schedule),
      Info<ir::Precision>(EnumKind::Precision),
      Info<ir::ChatTemplateName>(EnumKind::ChatTemplate),
      Info<ir::BadLines>(EnumKind::BadLines),
      Info<ir::DeviceName>(EnumKind::Device),
      Info<ir::Shard>(EnumKind::Shard),
  };
  return enums;
}

const EnumInfo& GetEnumInfo(EnumKind kind) { return AllEnums()[static_cast<size_t>(kind)]; }

namespace types {
TypeRef Error() {
  static const TypeRef type = MakeSingleton(TypeKind::Error);
  return type;
}
TypeRef None() {
  static const TypeRef type = MakeSingleton(TypeKind::None);
  return type;
}
TypeRef Int() {
  static const TypeRef type = MakeSingleton(TypeKind::Int);
  return type;
}
TypeRef Float() {
  static const TypeRef type = MakeSingleton(TypeKind::Float);
  return type;
}
TypeRef Bool() {
  static const TypeRef type = MakeSingleton(TypeKind::Bool);
  return type;
}
TypeRef String() {
  static const TypeRef type = MakeSingleton(TypeKind::String);
  return type;
}
TypeRef Opaque(TypeKind kind) {
  static const auto singletons = [] {
    std::array<TypeRef, std::size(kKindSpelling)> all;
    for (size_t i = 0; i < all.size(); ++i) all[i] = MakeSingleton(static_cast<TypeKind>(i));
    return all;
  }();
  return singletons[static_cast<size_t>(kind)];
}
TypeRef List(TypeRef element) {
  auto type = std::make_shared<Type>();
  type->kind = TypeKind::List;
  type->element = std::move(element);
  return type;
}
TypeRef Record(std::vector<std::pair<std::string, TypeRef>> fields) {
  auto type = std::make_shared<Type>();
  type->kind = TypeKind::Record;
  type->fields = std::move(fields);
  return type;
}
TypeRef Enum(EnumKind kind) {
  static const auto singletons = [] {
    std::vector<TypeRef> all;
    for (const EnumInfo& info : AllEnums()) {
      auto type = std::make_shared<Type>();
      type->kind = TypeKind::Enum;
      type->enum_kind = info.kind;
      all.push_back(type);
    }
    return all;
  }();
  return singletons[static_cast<size_t>(kind)];
}
}  // namespace types

std::string ToString(const Type& type) {
  switch (type.kind) {
    case TypeKind::List:
      return "list[" + (type.element ? ToString(*type.element) : std::string("?")) + "]";
    case TypeKind::Record: {
      std::string out = "{";
      for (size_t i = 0; i < type.fields.size(); ++i) {
        if (i > 0) out += ", ";
        out += type.fields[i].first + ": " + ToString(*type.fields[i].second);
      }
      return out + "}";
    }
    case TypeKind::Enum:
      return std::string(GetEnumInfo(type.enum_kind).name);
    default:
      return std::string(kKindSpelling[static_cast<size_t>(type.kind)]);
  }
}

bool IsNumeric(const Type& type) { return type.kind == TypeKind::Int || type.kind == TypeKind::Float; }
bool IsError(const Type& type) { return type.kind == TypeKind::Error; }

bool IsAssignable(const Type& from, const Type& to) {
  if (from.kind == TypeKind::Error || to.kind == TypeKind::Error) return true;
  if (from.kind == TypeKind::Int && to.kind == TypeKind::Float) return true;
  if (from.kind == TypeKind::Stage && to.kind == TypeKind::Model) return true;
  if (from.kind != to.kind) return false;
  switch (from.kind) {
    case TypeKind::List:
      return IsAssignable(*from.element, *to.element);
    case TypeKind::Record: {
      if (from.fields.size() != to.fields.size()) return false;
      for (const auto& wanted : to.fields) {
        auto it = std::find_if(from.fields.begin(), from.fields.end(),
                               [&](const auto& field) { return field.first == wanted.first; });
        if (it == from.fields.end() || !IsAssignable(*it->second, *wanted.second)) return false;
      }
      return true;
    }
    case TypeKind::Enum:
      return from.enum_kind == to.enum_kind;
    default:
      return true;
  }
}

TypeRef Join(const TypeRef& a, const TypeRef& b) {
  if (a->kind == TypeKind::Error) return b;
  if (b->kind == TypeKind::Error) return a;
  if (IsAssignable(*a, *b)) return b;
  if (IsAssignable(*b, *a)) return a;
  if (a->kind == TypeKind::List && b->kind == TypeKind::List) {
    TypeRef element = Join(a->element, b->element);
    return element ? types::List(element) : nullptr;
  }
  return nullptr;
}

TypeRef TypeByName(std::string_view name) {
  for (TypeKind kind : kNamedKinds) {
    if (kKindSpelling[static_cast<size_t>(kind)] == name) {
      switch (kind) {
        case TypeKind::Int:
          return types::Int();
        case TypeKind::Float:
          return types::Float();
        case TypeKind::Bool:
          return types::Bool();
        case TypeKind::String:
          return types::String();
        default:
          return types::Opaque(kind);
      }
    }
  }
  for (const EnumInfo& info : AllEnums()) {
    if (info.name == name) return types::Enum(info.kind);
  }
  return nullptr;
}

std::vector<std::string> TypeNames() {
  std::vector<std::string> names;
  for (TypeKind kind : kNamedKinds) names.emplace_back(kKindSpelling[static_cast<size_t>(kind)]);
  for (const EnumInfo& info : AllEnums()) names.emplace_back(info.name);
  names.emplace_back("list");
  return names;
}

}  // namespace fusec::sema
