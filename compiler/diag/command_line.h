// Usage errors of a CLI11 command line, named with a suggestion: `fusec chekc` gives
// "unknown command `chekc`; did you mean `check`?", `fusec run x.fuse --resum` gives
// "unknown option `--resum`; did you mean `--resume`?".
//
// CLI11's own messages ("The following argument was not expected: --resum") neither say what the argument
// was taken for nor what was meant, so when CLI11 refuses a command line, UnknownCommandOrOption() walks the
// arguments itself against the same CLI::App: the first word that is no subcommand where one is expected,
// or the first `--option` that the chosen command does not have. `fusec` and `fusec-rt` share it, so it is
// header-only (both link CLI11, the suggester is compiler/diag's).
#pragma once

#include <CLI/CLI.hpp>
#include <cctype>
#include <optional>
#include <string>
#include <vector>

#include "compiler/diag/suggest.h"

namespace fusec {

/// The message for an unknown command or option in `args` (the arguments after the program's name), or
/// nullopt when every command and option is known (then CLI11's message says what else is wrong).
/// `other_commands` are commands handled outside `app` (fusec's runtime commands), offered as suggestions.
inline std::optional<std::string> UnknownCommandOrOption(const CLI::App& app, const std::vector<std::string>& args,
                                                          const std::vector<std::string>& other_commands = {}) {
  const CLI::App* command = &app;
  bool top = true;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") break;  // what follows is positional
    bool negative_number = arg.size() > 1 && arg[0] == '-' && (std::isdigit(static_cast<unsigned char>(arg[1])) || arg[1] == '.');
    if (arg.size() > 1 && arg[0] == '-' && !negative_number) {
      std::string name = arg.substr(0, arg.find('='));
      const CLI::Option* known = nullptr;
      for (const CLI::App* owner = command; owner != nullptr && known == nullptr; owner = owner->get_parent()) {
        known = owner->get_option_no_throw(name);
      }
      if (known != nullptr) {
        // `--out DIR`: the next argument is its value, whatever it looks like.
        if (arg.find('=') == std::string::npos && known->get_items_expected_min() > 0) ++i;
        continue;
      }
      if (name == "-h" || name == "--help") continue;
      std::vector<std::string> options;
      for (const CLI::Option* option : command->get_options()) {
        for (const std::string& long_name : option->get_lnames()) options.push_back("--" + long_name);
      }
      std::string message = "unknown option `" + name + "`";
      if (std::optional<std::string> meant = Suggest(name, options)) message += "; did you mean `" + *meant + "`?";
      return message;
    }
    // A word: a subcommand where the command has subcommands, else a positional argument.
    const std::vector<const CLI::App*> subcommands = command->get_subcommands([](const CLI::App*) { return true; });
    if (subcommands.empty()) continue;
    const CLI::App* chosen = nullptr;
    for (const CLI::App* subcommand : subcommands) {
      if (subcommand->check_name(arg)) chosen = subcommand;
    }
    if (chosen != nullptr) {
      command = chosen;
      top = false;
      continue;
    }
    std::vector<std::string> names;
    for (const CLI::App* subcommand : subcommands) names.push_back(subcommand->get_name());
    if (top) names.insert(names.end(), other_commands.begin(), other_commands.end());
    std::string message = "unknown command `" + arg + "`";
    if (std::optional<std::string> meant = Suggest(arg, names)) message += "; did you mean `" + *meant + "`?";
    return message;
  }
  return std::nullopt;
}

}  // namespace fusec
