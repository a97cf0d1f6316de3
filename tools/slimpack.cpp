// slimpack: one program, one subcommand per job (DESIGN.md "Command line").
// Exit codes: 0 success, 1 a verification check failed, 2 bad usage or bad
// input, 3 internal error.
#include <cstdio>
#include <exception>

#include "libcompress/io/atomic_file.h"
#include "tools/cli.h"

int main(int argc, char** argv) {
  CLI::App app{
      "slimpack: compress FP16/FP32 models (pruning, int4/int8 quantization) into a packed\n"
      "format and verify them against the original with a bundled runtime.\n"
      "Exit codes: 0 ok, 1 a verification check failed, 2 bad usage or input, 3 internal error."};
  app.name("slimpack");  // not argv[0]: help text is the same however the program is called (docs/CLI.md)
  app.set_version_flag("--version", [] { return slim::cli::VersionText(); },
                       "Print the version, git commit, compiler, and this host's CPU features and kernels");
  app.require_subcommand(1);
  // An interrupted write removes its temporary file (exit 130/143).
  slim::InstallOutputSignalHandlers();
  int exit_code = slim::cli::kExitOk;
  slim::cli::AddInspectCommand(app, exit_code);
  slim::cli::AddRunCommand(app, exit_code);
  slim::cli::AddEvalCommand(app, exit_code);
  slim::cli::AddCompileCommand(app, exit_code);
  slim::cli::AddVerifyCommand(app, exit_code);
  slim::cli::AddPassesCommand(app, exit_code);
  slim::cli::AddTargetsCommand(app, exit_code);
  slim::cli::AddSynthCommand(app, exit_code);
  slim::cli::AddExportCommand(app, exit_code);
  slim::cli::AddTokenizeCommand(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : slim::cli::kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "slimpack: internal error: %s\n", e.what());
    return slim::cli::kExitInternal;
  }
  return exit_code;
}
