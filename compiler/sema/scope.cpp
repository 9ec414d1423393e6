#include "compiler/sema/scope.h"

#include <set>

namespace fusec::sema {

std::pair<Binding*, bool> Scope::Define(Binding binding) {
  auto [it, inserted] = bindings_.try_emplace(binding.name, nullptr);
  if (!inserted) return {it->second.get(), false};
  it->second = std::make_unique<Binding>(std::move(binding));
  ordered_.push_back(it->second.get());
  return {it->second.get(), true};
}

Binding* Scope::FindLocal(const std::string& name) {
  auto it = bindings_.find(name);
  return it == bindings_.end() ? nullptr : it->second.get();
}

const Binding* Scope::FindLocal(const std::string& name) const {
  auto it = bindings_.find(name);
  return it == bindings_.end() ? nullptr : it->second.get();
}

Binding* Scope::Find(const std::string& name) {
  for (Scope* scope = this; scope != nullptr; scope = scope->parent_) {
    if (Binding* binding = scope->FindLocal(name)) return binding;
  }
  return nullptr;
}

std::vector<std::string> Scope::VisibleNames() const {
  std::set<std::string> names;
  for (const Scope* scope = this; scope != nullptr; scope = scope->parent_) {
    for (const auto& [name, binding] : scope->bindings_) names.insert(name);
  }
  return {names.begin(), names.end()};
}

}  // namespace fusec::sema
