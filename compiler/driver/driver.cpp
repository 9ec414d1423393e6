#include "compiler/driver/driver.h"

#include <CLI/CLI.hpp>
#include <ostream>

#include "compiler/diag/diagnostics.h"
#include "compiler/sema/check.h"

#ifndef FUSEC_VERSION
#define FUSEC_VERSION "0.0.0"
#endif

namespace fusec {
namespace {

struct CommonOptions {
  std::string stdlib;
};

void AddCommonOptions(CLI::App& command, CommonOptions& options) {
  command.add_option("--stdlib", options.stdlib, "The stdlib directory (default: found next to fusec)")
      ->check(CLI::ExistingDirectory);
}

/// Checks files and prints their diagnostics; returns the program and whether there were errors.
std::pair<sema::CheckedProgram, bool> CheckAndReport(const std::vector<std::string>& files,
                                                    const CommonOptions& common, SourceManager& sources,
                                                    std::ostream& err) {
  Diagnostics diagnostics;
  CheckOptions options;
  options.files = files;
  options.stdlib_dir = common.stdlib;
  sema::CheckedProgram program = Check(options, sources, diagnostics);
  err << RenderAll(diagnostics, sources);
  if (!diagnostics.all().empty()) err << Summary(diagnostics) << "\n";
  return {std::move(program), diagnostics.has_errors()};
}

int RunCheck(const std::vector<std::string>& files, const CommonOptions& common, std::ostream& out,
             std::ostream& err) {
  SourceManager sources;
  auto [program, has_errors] = CheckAndReport(files, common, sources, err);
  if (has_errors) return kExitErrors;
  size_t stages = 0;
  for (const auto& experiment : program.experiments) stages += experiment.stages.size();
  auto plural = [](size_t n, const char* word) { return std::to_string(n) + " " + word + (n == 1 ? "" : "s"); };
  out << "ok: " << plural(files.size(), "file") << ", " << plural(program.experiments.size(), "experiment") << ", "
      << plural(stages, "stage") << "\n";
  return kExitOk;
}

int RunPlan(const std::string& file, const std::string& emit, const CommonOptions& common, std::ostream& out,
            std::ostream& err) {
  SourceManager sources;
  auto [program, has_errors] = CheckAndReport({file}, common, sources, err);
  if (has_errors) return kExitErrors;
  if (emit == "ast") out << sema::PrintProgram(program, sources);
  return kExitOk;
}

}  // namespace

std::string VersionString() { return std::string("fusec ") + FUSEC_VERSION; }

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"fusec: a compiler and runtime for FuseRL experiments.\n"
               "Checks .fuse experiment files and explains what they would run.",
               "fusec"};
  app.set_version_flag("--version", VersionString() + " (stdlib: " + DefaultStdlibDir() + ")");
  app.require_subcommand(1);
  app.footer("Exit status: 0 when clean (warnings allowed), 1 when the input has errors, 2 for usage errors.\n"
             "Documentation: docs/language.md\n");

  CommonOptions common;
  std::vector<std::string> check_files;
  CLI::App* check = app.add_subcommand("check", "Check .fuse files and report every problem");
  check->add_option("files", check_files, "The .fuse files to check")->required();
  AddCommonOptions(*check, common);

  std::string plan_file;
  std::string emit = "ast";
  CLI::App* plan = app.add_subcommand("plan", "Check a .fuse file and print what it would run");
  plan->add_option("file", plan_file, "The .fuse file")->required();
  plan->add_option("--emit", emit, "What to print: `ast` (the checked experiments)")
      ->check(CLI::IsMember({"ast"}))
      ->capture_default_str();
  AddCommonOptions(*plan, common);

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      app.exit(error, out, err);  // --help, --version
      return kExitOk;
    }
    std::string message = error.what();
    if (!message.empty()) message[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(message[0])));
    err << "error: " << message << " [Usage]\nhelp: run `fusec --help` for the commands and their options\n";
    return kExitUsage;
  }
  if (check->parsed()) return RunCheck(check_files, common, out, err);
  if (plan->parsed()) return RunPlan(plan_file, emit, common, out, err);
  return kExitUsage;
}

}  // namespace fusec
