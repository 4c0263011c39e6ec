// The reprise CLI's subcommands. Each Add*Command registers one CLI11
// subcommand; its callback returns the process exit code through `exit_code`.
// Only tools/ parses argv; library code never exits.
#pragma once

#include <CLI/CLI.hpp>

namespace reprise::tools {

void AddInfoCommand(CLI::App& app, int& exit_code);
void AddGenerateCommand(CLI::App& app, int& exit_code);
void AddLogitsCommand(CLI::App& app, int& exit_code);
void AddTokenizeCommands(CLI::App& app, int& exit_code);  // tokenize, detokenize, convert-vocab
void AddTemplateCommand(CLI::App& app, int& exit_code);
void AddServeCommand(CLI::App& app, int& exit_code);
void AddBenchCommand(CLI::App& app, int& exit_code);
void AddMakeModelCommand(CLI::App& app, int& exit_code);

}  // namespace reprise::tools
