#include "compiler/driver/manifest.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

#include "compiler/cache/cache.h"
#include "compiler/driver/driver.h"

namespace fusec {
namespace {

namespace fs = std::filesystem;

/// A relative path under `base` for a displayed path: `..` becomes `_up_` and a leading `/` is dropped, so
/// files keep their relative positions (and relative imports keep working) without leaving `base`.
fs::path Contained(const fs::path& base, const std::string& display) {
  fs::path out = base;
  for (const fs::path& part : fs::path(display).lexically_normal()) {
    std::string name = part.string();
    if (name == "/" || name.empty() || name == ".") continue;
    out /= name == ".." ? "_up_" : name;
  }
  return out;
}

}  // namespace

std::string InputBase(const std::string& main_file) {
  return fs::absolute(main_file).lexically_normal().parent_path().string();
}

std::string ResolveInputPath(const std::string& input_base, const std::string& path) {
  fs::path written = path;
  return (written.is_relative() ? fs::path(input_base) / written : written).lexically_normal().string();
}

std::string ManifestNodeLabel(const ir::Graph& graph, size_t index) {
  const ir::Node& node = graph.nodes[index];
  std::string label = "%" + std::to_string(index) + " " + std::string(ir::Spelling(node.kind()));
  for (const std::string& stage : node.stages) label += " " + stage;
  return label;
}

std::vector<ManifestInput> GraphInputs(const ir::Graph& graph, const std::string& input_base) {
  std::vector<ManifestInput> inputs;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::Node& node = graph.nodes[i];
    if (const auto* data = node.get_if<ir::LoadData>()) {
      inputs.push_back({ManifestNodeLabel(graph, i), ResolveInputPath(input_base, data->data.path),
                        data->data.fingerprint});
    } else if (const auto* model = node.get_if<ir::LoadModel>()) {
      if (const auto* hf = std::get_if<ir::HfModelSpec>(&model->model)) {
        inputs.push_back({ManifestNodeLabel(graph, i), ResolveInputPath(input_base, hf->path), hf->fingerprint});
      }
    } else if (const auto* score = node.get_if<ir::Score>()) {
      if (const auto* reward_model = std::get_if<ir::RewardModelSpec>(&score->scorer)) {
        inputs.push_back({ManifestNodeLabel(graph, i), ResolveInputPath(input_base, reward_model->path),
                          reward_model->fingerprint});
      }
    }
  }
  return inputs;
}

RunManifest MakeRunManifest(const std::string& root, const std::vector<std::string>& overrides,
                            const SourceManager& sources, const sema::CheckedProgram& program,
                            const ir::Graph& graph, const std::string& input_base) {
  RunManifest manifest;
  manifest.fusec_version = VersionString();
  manifest.created = UtcNow();
  manifest.root = root;
  manifest.overrides = overrides;
  for (uint32_t i = 0; i < sources.file_count(); ++i) {
    const SourceFile& file = sources.file(FileId{i});
    if (file.display_name() == "--set") continue;  // recorded as overrides
    manifest.sources.push_back(ManifestSource{file.display_name(), file.text()});
  }
  manifest.resolved = sema::PrintProgram(program, sources);
  for (size_t i = 0; i < graph.nodes.size(); ++i) manifest.node_hashes.emplace_back(ManifestNodeLabel(graph, i), graph.nodes[i].hash);
  manifest.input_base = input_base;
  manifest.inputs = GraphInputs(graph, input_base);
  return manifest;
}

std::string RunManifestToToml(const RunManifest& manifest) {
  toml::table table;
  table.insert("fusec_version", manifest.fusec_version);
  table.insert("created", manifest.created);
  table.insert("root", manifest.root);
  toml::array overrides;
  for (const std::string& override_text : manifest.overrides) overrides.push_back(override_text);
  table.insert("overrides", overrides);
  table.insert("resolved", manifest.resolved);
  toml::array nodes;
  for (const auto& [label, hash] : manifest.node_hashes) nodes.push_back(toml::table{{"node", label}, {"hash", hash}});
  table.insert("nodes", nodes);
  table.insert("input_base", manifest.input_base);
  toml::array inputs;
  for (const ManifestInput& input : manifest.inputs) {
    inputs.push_back(toml::table{{"node", input.node}, {"path", input.path}, {"fingerprint", input.fingerprint}});
  }
  table.insert("inputs", inputs);
  toml::array files;
  for (const ManifestSource& source : manifest.sources) {
    files.push_back(toml::table{{"path", source.path}, {"text", source.text}});
  }
  table.insert("sources", files);
  std::ostringstream out;
  out << "# A fusec run manifest: the sources, overrides and node hashes of a plan.\n"
      << "# Reproduce it with: fusec plan --from-manifest <this file>\n"
      << table << "\n";
  return out.str();
}

std::optional<RunManifest> RunManifestFromToml(const std::string& text, std::string* error) {
  toml::table table;
  try {
    table = toml::parse(text);
  } catch (const toml::parse_error& parse_error) {
    *error = "not valid TOML: " + std::string(parse_error.description()) + " (line " +
             std::to_string(parse_error.source().begin.line) + ")";
    return std::nullopt;
  }
  RunManifest manifest;
  auto root = table["root"].value<std::string>();
  if (!root) {
    *error = "it has no `root`";
    return std::nullopt;
  }
  manifest.root = *root;
  manifest.fusec_version = table["fusec_version"].value_or(std::string());
  manifest.created = table["created"].value_or(std::string());
  manifest.resolved = table["resolved"].value_or(std::string());
  if (auto overrides = table["overrides"].as_array()) {
    for (const toml::node& node : *overrides) {
      if (auto value = node.value<std::string>()) manifest.overrides.push_back(*value);
    }
  }
  if (auto nodes = table["nodes"].as_array()) {
    for (const toml::node& node : *nodes) {
      const toml::table* entry = node.as_table();
      if (entry == nullptr) continue;
      manifest.node_hashes.emplace_back((*entry)["node"].value_or(std::string()),
                                        (*entry)["hash"].value_or(std::string()));
    }
  }
  manifest.input_base = table["input_base"].value_or(std::string());
  if (auto inputs = table["inputs"].as_array()) {
    for (const toml::node& node : *inputs) {
      const toml::table* entry = node.as_table();
      auto path = entry ? (*entry)["path"].value<std::string>() : std::nullopt;
      auto fingerprint = entry ? (*entry)["fingerprint"].value<std::string>() : std::nullopt;
      if (!path || !fingerprint) {
        *error = "an input has no `path` or `fingerprint`";
        return std::nullopt;
      }
      manifest.inputs.push_back(ManifestInput{(*entry)["node"].value_or(std::string()), *path, *fingerprint});
    }
  }
  const toml::array* sources = table["sources"].as_array();
  if (sources == nullptr || sources->empty()) {
    *error = "it has no `sources`";
    return std::nullopt;
  }
  for (const toml::node& node : *sources) {
    const toml::table* entry = node.as_table();
    auto path = entry ? (*entry)["path"].value<std::string>() : std::nullopt;
    auto source_text = entry ? (*entry)["text"].value<std::string>() : std::nullopt;
    if (!path || !source_text) {
      *error = "a source has no `path` or `text`";
      return std::nullopt;
    }
    manifest.sources.push_back(ManifestSource{*path, *source_text});
  }
  return manifest;
}

std::optional<std::string> MaterializeSources(const RunManifest& manifest, const std::string& directory,
                                              std::string* stdlib, std::string* error) {
  fs::path files = fs::path(directory) / "files";
  fs::path stdlib_dir = fs::path(directory) / "stdlib";
  std::error_code ec;
  fs::create_directories(files, ec);
  fs::create_directories(stdlib_dir, ec);
  for (const ManifestSource& source : manifest.sources) {
    bool in_stdlib = source.path.rfind("std/", 0) == 0;
    fs::path target = in_stdlib ? Contained(stdlib_dir, source.path.substr(4)) : Contained(files, source.path);
    fs::create_directories(target.parent_path(), ec);
    std::ofstream out(target, std::ios::binary);
    out << source.text;
    if (!out) {
      *error = "cannot write " + target.string();
      return std::nullopt;
    }
  }
  *stdlib = stdlib_dir.string();
  return Contained(files, manifest.root).string();
}

}  // namespace fusec
