// Modules: loading files, resolving imports, and module scopes.
//
// `import std.objectives.{dpo}` reads <stdlib>/objectives.fuse; `import "lib/common.fuse" as common` reads a
// file relative to the importing one. Each file is loaded once per run (by normalised path) and its imports
// are loaded depth-first before its scope is built, which is also where import cycles are found. Every user
// module sees the prelude, std/stages.fuse, which defines the stage kinds (`sft`, `fuse_sft`, `po`,
// `fuse_po`); stdlib modules import what they use explicitly.

#include <algorithm>
#include <filesystem>
#include <set>

#include "compiler/diag/suggest.h"
#include "compiler/parse/parse.h"
#include "compiler/sema/sema.h"

namespace fusec::sema {
namespace {

namespace fs = std::filesystem;

bool IsIdentifier(const std::string& text) {
  if (text.empty() || !(std::isalpha(static_cast<unsigned char>(text[0])) || text[0] == '_')) return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

std::vector<std::string> StdlibModules(const std::string& stdlib_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(stdlib_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() != ".fuse") continue;
    fs::path relative = fs::relative(it->path(), stdlib_dir, ec);
    std::string name = "std";
    for (const fs::path& part : relative.replace_extension()) name += "." + part.string();
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

namespace {

/// Shared tail of stdlib and file imports: load (once), detect cycles, parse, build the scope.
ModuleInfo* LoadModuleAt(Sema& sema, std::deque<ModuleInfo>& modules, std::map<std::string, ModuleInfo*>& by_path,
                         std::vector<ModuleInfo*>& stack, const std::string& path, const std::string& display,
                         const std::string& name, bool is_stdlib, SourceSpan span) {
  std::string canonical = NormalizePath(path);
  if (auto it = by_path.find(canonical); it != by_path.end()) {
    ModuleInfo* module = it->second;
    if (module->state == ModuleInfo::State::Loading) {
      std::string chain;
      bool in_cycle = false;
      for (ModuleInfo* loading : stack) {
        if (loading == module) in_cycle = true;
        if (in_cycle) chain += "`" + loading->name + "` -> ";
      }
      sema.Report(DiagnosticKind::ImportCycle, span, "import cycle: " + chain + "`" + module->name + "`")
          .Help("move what both modules need into a third module that imports neither");
      return nullptr;
    }
    return module;
  }
  std::string error;
  auto file = sema.sources().Load(path, display, &error);
  if (!file) return nullptr;
  ModuleInfo& module = modules.emplace_back();
  module.file = *file;
  module.name = name;
  module.is_stdlib = is_stdlib;
  by_path[canonical] = &module;
  size_t errors = sema.diagnostics().error_count();
  module.ast = Parse(sema.sources(), *file, sema.diagnostics());
  module.parsed = sema.diagnostics().error_count() == errors;
  stack.push_back(&module);
  sema.BuildModuleScope(module);
  stack.pop_back();
  module.state = ModuleInfo::State::Loaded;
  return &module;
}

}  // namespace

ModuleInfo* Sema::LoadRootModule(const std::string& path, const std::string* text) {
  if (text != nullptr) {
    if (sources_.FindByPath(NormalizePath(path))) {
      Report(DiagnosticKind::FileNotFound, SourceSpan{}, "`" + path + "` is given twice");
      return nullptr;
    }
    sources_.Add(path, NormalizePath(path), *text);
  } else {
    std::string error;
    if (!sources_.Load(path, path, &error)) {
      Report(DiagnosticKind::FileNotFound, SourceSpan{}, "cannot read `" + path + "`: " + error);
      return nullptr;
    }
  }
  return LoadModuleAt(*this, modules_, modules_by_path_, loading_stack_, path, path, path, false, SourceSpan{});
}

ModuleInfo* Sema::LoadStdlibModule(const std::vector<ast::Identifier>& dotted, SourceSpan span) {
  std::string name;
  fs::path path = stdlib_dir_;
  for (size_t i = 0; i < dotted.size(); ++i) {
    name += (i > 0 ? "." : "") + dotted[i].text;
    if (i > 0) path /= dotted[i].text;
  }
  path += ".fuse";
  std::string display = "std";
  for (size_t i = 1; i < dotted.size(); ++i) display += "/" + dotted[i].text;
  display += ".fuse";
  std::error_code ec;
  if (dotted.size() < 2 || !fs::is_regular_file(path, ec)) {
    auto builder = Report(DiagnosticKind::ModuleNotFound, span, "no module `" + name + "` in the stdlib");
    std::string hint = DidYouMean(name, StdlibModules(stdlib_dir_));
    if (!hint.empty()) {
      builder.Help(hint);
    } else {
      std::string list;
      for (const std::string& module : StdlibModules(stdlib_dir_)) list += (list.empty() ? "`" : ", `") + module + "`";
      builder.Help(list.empty() ? "the stdlib was not found at " + stdlib_dir_ : "stdlib modules: " + list);
    }
    return nullptr;
  }
  return LoadModuleAt(*this, modules_, modules_by_path_, loading_stack_, path.string(), display, name, true, span);
}

ModuleInfo* Sema::LoadFileModule(const ModuleInfo& from, const std::string& relative, SourceSpan span) {
  fs::path base = fs::path(sources_.file(from.file).canonical_path()).parent_path();
  fs::path path = fs::path(relative).is_absolute() ? fs::path(relative) : base / relative;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    fs::path shown = fs::path(sources_.file(from.file).display_name()).parent_path() / relative;
    Report(DiagnosticKind::ModuleNotFound, span, "cannot import \"" + relative + "\": no such file")
        .Note("looked for " + shown.lexically_normal().string());
    return nullptr;
  }
  // Display the path relative to the importing file's display name, as the user would open it.
  fs::path display = fs::path(sources_.file(from.file).display_name()).parent_path() / relative;
  return LoadModuleAt(*this, modules_, modules_by_path_, loading_stack_, path.string(),
                      display.lexically_normal().string(), display.lexically_normal().string(), from.is_stdlib, span);
}

void Sema::BuildModuleScope(ModuleInfo& module) {
  module.scope = MakeScope(module.is_stdlib ? builtin_scope_ : (prelude_scope_ ? prelude_scope_ : builtin_scope_));
  if (!module.parsed) return;
  std::map<std::string, SourceSpan> defined;
  auto define = [&](Binding binding) {
    auto [it, inserted] = defined.emplace(binding.name, binding.span);
    if (!inserted) {
      Report(DiagnosticKind::DuplicateName, binding.span, "`" + binding.name + "` is defined twice in this module")
          .Note(it->second, "first defined here");
      return;
    }
    module.scope->Define(std::move(binding));
  };
  auto module_value = [&](const ModuleInfo* target, SourceSpan span) {
    return values::Make(types::Opaque(TypeKind::Module), span, ModuleVal{target});
  };

  for (const ast::ImportDecl& import : module.ast.imports) {
    ModuleInfo* target = nullptr;
    std::string default_name;
    if (import.file_path) {
      target = LoadFileModule(module, *import.file_path, import.path_span);
      default_name = fs::path(*import.file_path).stem().string();
    } else {
      if (import.dotted_path.empty() || import.dotted_path.front().text != "std") {
        auto builder = Report(DiagnosticKind::ModuleNotFound, import.path_span,
                              "module paths start with `std`; files are imported by their path in quotes");
        builder.Help("as in `import std.objectives.{dpo}` or `import \"lib/common.fuse\" as common`");
        continue;
      }
      target = LoadStdlibModule(import.dotted_path, import.path_span);
      default_name = import.dotted_path.back().text;
    }
    if (target == nullptr || !target->scope) {
      // The import failed and was reported: its names are bound to errors, so their uses stay quiet.
      auto poison = [&](const ast::Identifier& id) {
        Binding binding;
        binding.name = id.text;
        binding.kind = BindingKind::Import;
        binding.span = id.span;
        binding.value = values::Error(id.span);
        define(std::move(binding));
      };
      if (import.items) {
        for (const ast::ImportItem& item : *import.items) poison(item.alias ? *item.alias : item.name);
      } else if (import.alias) {
        poison(*import.alias);
      } else if (IsIdentifier(default_name)) {
        poison(ast::Identifier{default_name, import.path_span});
      }
      continue;
    }
    if (import.items) {
      for (const ast::ImportItem& item : *import.items) {
        Binding* exported = target->scope->FindLocal(item.name.text);
        if (exported == nullptr || exported->kind == BindingKind::Import) {
          auto builder = Report(DiagnosticKind::UnknownImport, item.name.span,
                                "module `" + target->name + "` has no `" + item.name.text + "`");
          std::vector<std::string> names;
          for (Binding* binding : target->scope->ordered()) {
            if (binding->kind != BindingKind::Import) names.push_back(binding->name);
          }
          std::string hint = DidYouMean(item.name.text, names);
          if (!hint.empty()) builder.Help(hint);
          continue;
        }
        Binding binding;
        binding.name = item.alias ? item.alias->text : item.name.text;
        binding.kind = BindingKind::Import;
        binding.span = item.alias ? item.alias->span : item.name.span;
        binding.value = Force(*exported, item.name.span);
        exported->used = false;  // being imported is not a use within the exporting module
        binding.warn_if_unused = !module.is_stdlib;
        define(std::move(binding));
      }
      continue;
    }
    std::string name = import.alias ? import.alias->text : default_name;
    if (!IsIdentifier(name)) {
      Report(DiagnosticKind::ModuleNotFound, import.path_span,
             "cannot name the module \"" + name + "\"; give it a name with `as`");
      continue;
    }
    Binding binding;
    binding.name = name;
    binding.kind = BindingKind::Import;
    binding.span = import.alias ? import.alias->span : import.path_span;
    binding.value = module_value(target, binding.span);
    binding.warn_if_unused = !module.is_stdlib;
    define(std::move(binding));
  }

  auto shared_none = std::make_shared<const DataContext>();
  for (const ast::Decl& decl : module.ast.decls) {
    const ast::Identifier& name = ast::DeclName(decl);
    Binding binding;
    binding.name = name.text;
    binding.kind = BindingKind::Declaration;
    binding.span = name.span;
    if (const auto* let = std::get_if<ast::LetDecl>(&decl)) {
      binding.kind = BindingKind::Let;
      if (let->params) {
        binding.value = values::Make(types::Opaque(TypeKind::Function), let->span, FunctionVal{let, module.scope});
      } else {
        binding.state = Binding::State::Pending;
        binding.expr = let->value.get();
        binding.env = module.scope;
        binding.context = shared_none;
      }
    } else if (const auto* objective = std::get_if<ast::ObjectiveDecl>(&decl)) {
      binding.value = values::Make(types::Opaque(TypeKind::Function), name.span,
                                   DeclVal{DeclVal::Kind::Objective, objective, module.scope, name.text, name.span});
    } else if (const auto* weighting = std::get_if<ast::WeightingDecl>(&decl)) {
      binding.value = values::Make(types::Opaque(TypeKind::Function), name.span,
                                   DeclVal{DeclVal::Kind::Weighting, weighting, module.scope, name.text, name.span});
    } else if (const auto* stage = std::get_if<ast::StageTemplateDecl>(&decl)) {
      binding.value = values::Make(types::Opaque(TypeKind::Function), name.span,
                                   DeclVal{DeclVal::Kind::StageTemplate, stage, module.scope, name.text, name.span});
    } else if (const auto* experiment = std::get_if<ast::ExperimentDecl>(&decl)) {
      if (!experiment->params) {
        // Concrete experiments and instances are not values; they only need a unique name.
        auto [it, inserted] = defined.emplace(name.text, name.span);
        if (!inserted) {
          Report(DiagnosticKind::DuplicateName, name.span, "`" + name.text + "` is defined twice in this module")
              .Note(it->second, "first defined here");
        }
        continue;
      }
      binding.value =
          values::Make(types::Opaque(TypeKind::Function), name.span,
                       DeclVal{DeclVal::Kind::ExperimentTemplate, experiment, module.scope, name.text, name.span});
    } else {
      auto [it, inserted] = defined.emplace(name.text, name.span);
      if (!inserted) {
        Report(DiagnosticKind::DuplicateName, name.span, "`" + name.text + "` is defined twice in this module")
            .Note(it->second, "first defined here");
      }
      continue;
    }
    define(std::move(binding));
  }
}

std::optional<std::string> Sema::StdlibHint(const std::string& name) {
  if (!stdlib_index_) {
    stdlib_index_.emplace();
    for (const std::string& module : StdlibModules(stdlib_dir_)) {
      fs::path path = stdlib_dir_;
      std::string rest = module.substr(4);
      for (size_t start = 0; start <= rest.size();) {
        size_t dot = rest.find('.', start);
        path /= rest.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (dot == std::string::npos) break;
        start = dot + 1;
      }
      path += ".fuse";
      SourceManager scratch_sources;
      Diagnostics scratch_diagnostics;
      std::string error;
      auto file = scratch_sources.Load(path.string(), module, &error);
      if (!file) continue;
      ast::Module parsed = Parse(scratch_sources, *file, scratch_diagnostics);
      for (const ast::Decl& decl : parsed.decls) stdlib_index_->emplace(ast::DeclName(decl).text, module);
    }
  }
  auto it = stdlib_index_->find(name);
  if (it == stdlib_index_->end() || it->second == "std.stages") return std::nullopt;
  return "`" + name + "` is defined in `" + it->second + "`; add `import " + it->second + ".{" + name + "}`";
}

}  // namespace fusec::sema
