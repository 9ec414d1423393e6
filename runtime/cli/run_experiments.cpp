#include "runtime/cli/run_experiments.h"

#include <memory>
#include <ostream>

#include "compiler/driver/driver.h"

namespace fusec::rt {

int RunExperiments(const RunOptions& options, std::ostream& out, std::ostream& err) {
  PlanRequest request;
  request.file = options.file;
  request.overrides = options.overrides;
  request.stdlib = options.stdlib;
  request.config = options.config;
  request.cache = options.cache;
  std::unique_ptr<PlannedProgram> plan = PlanForRun(request, err);
  if (!plan) return 1;
  if (plan->graph.experiments.empty()) {
    err << "error: " << options.file << " has no experiment to run\n";
    return 1;
  }
  PlannedRun run{plan->graph, plan->sources};
  run.cache_dir = plan->cache_dir;
  run.config_device = plan->device;
  run.manifest_toml = RunManifestToToml(plan->manifest);
  run.fusec_version = VersionString();
  return RunGraph(run, options, out, err);
}

}  // namespace fusec::rt
