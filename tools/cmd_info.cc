// Placeholder: the `info` subcommand is not built yet.
#include <cstdio>

#include "commands.h"

namespace reprise::tools {

void AddInfoCommand(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("info", "(not yet available)");
  cmd->allow_extras();
  cmd->callback([&exit_code] {
    std::fprintf(stderr, "error: 'info' is not implemented yet\n");
    exit_code = 2;
  });
}

}  // namespace reprise::tools
