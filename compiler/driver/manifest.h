// Run manifests: everything needed to reproduce a plan, in one TOML file.
//
// A manifest holds the text of every file the check read (the experiment, the modules it imports, the stdlib
// modules, grid files), the overrides, fusec's version, the resolved experiments as `--emit=ast` prints them,
// and every node's hash. `fusec plan --from-manifest` writes the files back into a scratch directory, checks
// them with the same overrides against the manifest's own stdlib, and compares the hashes: a plan is
// reproduced when every hash matches.
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

struct RunManifest {
  std::string fusec_version;
  std::string created;
  std::string root;  // the experiment file, as displayed
  std::vector<std::string> overrides;
  std::vector<ManifestSource> sources;
  std::string resolved;  // PrintProgram of the checked program
  std::vector<std::pair<std::string, std::string>> node_hashes;  // `%id kind stages`, hash
};

/// The manifest of a plan: `sources` must be the SourceManager the check used.
RunManifest MakeRunManifest(const std::string& root, const std::vector<std::string>& overrides,
                            const SourceManager& sources, const sema::CheckedProgram& program,
                            const ir::Graph& graph);
std::string RunManifestToToml(const RunManifest& manifest);
std::optional<RunManifest> RunManifestFromToml(const std::string& text, std::string* error);

/// Writes a manifest's sources under `directory` (user files under `files/`, the stdlib under `stdlib/`).
/// Returns the path of the root file; sets `stdlib` to the written stdlib directory.
std::optional<std::string> MaterializeSources(const RunManifest& manifest, const std::string& directory,
                                              std::string* stdlib, std::string* error);

}  // namespace fusec
