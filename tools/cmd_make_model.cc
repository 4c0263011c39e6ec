// Placeholder: the `make-model` subcommand is not built yet.
#include <cstdio>

#include "commands.h"

namespace reprise::tools {

void AddMakeModelCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("make-model", "(not yet available)");
  cmd->allow_extras();
  cmd->callback([&exit_code] {
    std::fprintf(stderr, "error: 'make-model' is not implemented yet\n");
    exit_code = 2;
  });
}

}  // namespace reprise::tools
