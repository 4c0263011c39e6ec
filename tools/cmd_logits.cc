// Placeholder: the `logits` subcommand is not built yet.
#include <cstdio>

#include "commands.h"

namespace reprise::tools {

void AddLogitsCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("logits", "(not yet available)");
  cmd->allow_extras();
  cmd->callback([&exit_code] {
    std::fprintf(stderr, "error: 'logits' is not implemented yet\n");
    exit_code = 2;
  });
}

}  // namespace reprise::tools
