// reprise: one binary, one subcommand per task. JSON results go to stdout,
// logs to stderr; any error exits non-zero with a message naming the problem.
#include <cstdio>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"reprise: an LLM inference server with a bounded, shared prompt cache"};
  app.require_subcommand(1);
  int exit_code = 0;
  reprise::tools::AddInfoCommand(app, exit_code);
  reprise::tools::AddGenerateCommand(app, exit_code);
  reprise::tools::AddLogitsCommand(app, exit_code);
  reprise::tools::AddTokenizeCommands(app, exit_code);
  reprise::tools::AddTemplateCommand(app, exit_code);
  reprise::tools::AddServeCommand(app, exit_code);
  reprise::tools::AddBenchCommand(app, exit_code);
  reprise::tools::AddMakeModelCommand(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
