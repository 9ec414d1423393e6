// Run manifests: everything needed to reproduce a plan, in one TOML file.
//
// A manifest holds the text of every file the check read (the experiment, the modules it imports, the stdlib
// modules, grid files), the overrides, fusec's version, the resolved experiments as `--emit=ast` prints them,
// every node's hash, and every file the experiment reads (data files, model directories) with the absolute
// path it was read at and its fingerprint. `fusec plan --from-manifest` writes the sources back into a scratch
// directory, checks them with the same overrides against the manifest's own stdlib, reads the inputs where the
// manifest says they were (they are not copied: they can be gigabytes), and compares the hashes: a plan is
// reproduced when every hash matches. An input whose fingerprint changed is named first, since it explains
// the hashes that differ.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/diag/diagnostics.h"
#include "compiler/ir/ir.h"
#include "compiler/sema/checked.h"

namespace fusec {

struct ManifestSource {
  std::string path;  // as displayed: `experiments/paper/fuserl_dpo.fuse`, `std/objectives.fuse`
  std::string text;
};

/// A file the plan read: what the content hashes saw of it.
struct ManifestInput {
  std::string node;  // `%3 load_data e/s`, as in node_hashes
  std::string path;  // absolute, where the plan read it
  std::string fingerprint;  // `sha256:...`, `files:...` (a model directory) or `missing`
};

struct RunManifest {
  std::string fusec_version;
  std::string created;
  std::string root;  // the experiment file, as displayed
  std::vector<std::string> overrides;
  std::vector<ManifestSource> sources;
  std::string resolved;  // PrintProgram of the checked program
  std::vector<std::pair<std::string, std::string>> node_hashes;  // `%id kind stages`, hash
  std::string input_base;  // absolute: the directory the experiment's relative input paths start from
  std::vector<ManifestInput> inputs;
};

/// The manifest of a plan: `sources` must be the SourceManager the check used, `input_base` the directory the
/// graph's input paths were resolved against (InputBase).
RunManifest MakeRunManifest(const std::string& root, const std::vector<std::string>& overrides,
                            const SourceManager& sources, const sema::CheckedProgram& program,
                            const ir::Graph& graph, const std::string& input_base);

/// The directory an experiment's relative input paths start from: the main file's, absolute.
std::string InputBase(const std::string& main_file);
/// Where an input path written in the experiment is: relative paths start at `input_base`.
std::string ResolveInputPath(const std::string& input_base, const std::string& path);

/// `%3 load_data e/s`: a node as the manifest names it.
std::string ManifestNodeLabel(const ir::Graph& graph, size_t index);

/// The inputs of a graph's nodes (load_data's file, hf_model's directory), with the fingerprint lowering gave
/// them.
std::vector<ManifestInput> GraphInputs(const ir::Graph& graph, const std::string& input_base);
std::string RunManifestToToml(const RunManifest& manifest);
std::optional<RunManifest> RunManifestFromToml(const std::string& text, std::string* error);

/// Writes a manifest's sources under `directory` (user files under `files/`, the stdlib under `stdlib/`).
/// Returns the path of the root file; sets `stdlib` to the written stdlib directory.
std::optional<std::string> MaterializeSources(const RunManifest& manifest, const std::string& directory,
                                              std::string* stdlib, std::string* error);

}  // namespace fusec
