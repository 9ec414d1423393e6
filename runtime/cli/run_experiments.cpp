#include "runtime/cli/run_experiments.h"

#include <memory>
#include <ostream>
#include <sstream>

#include "compiler/driver/driver.h"
#include "runtime/dist/rank_group.h"
#include "runtime/support/run_error.h"

namespace fusec::rt {
namespace {

/// The leader plans first: planning may create the stage cache, which another rank must not find half made.
/// The others plan after it, quietly (the leader has said every warning); their own errors still reach `err`.
bool WaitForTheLeadersPlan(RankGroup& ranks, std::ostream& err) {
  try {
    ranks.AwaitPost("planned");
    return true;
  } catch (const DistributedError& error) {
    err << Render(RunError(RunErrorKind::Distributed, error.what()));
    return false;
  }
}

void TellTheOthersThePlan(RankGroup& ranks, bool planned) {
  try {
    if (planned) {
      ranks.Post("planned", "ok");
    } else {
      ranks.PostFailure("the experiment could not be planned (rank 0's errors say why)");
    }
  } catch (const DistributedError&) {
    // the others are gone already
  }
}

}  // namespace

int RunExperiments(const RunOptions& options, std::ostream& out, std::ostream& err) {
  PlanRequest request;
  request.file = options.file;
  request.overrides = options.overrides;
  request.stdlib = options.stdlib;
  request.config = options.config;
  request.cache = options.cache;
  RankGroup* ranks = options.ranks;
  const bool follower = ranks != nullptr && !ranks->leader();
  if (follower && !WaitForTheLeadersPlan(*ranks, err)) return 1;
  std::ostringstream follower_messages;
  std::unique_ptr<PlannedProgram> plan = PlanForRun(request, follower ? follower_messages : err);
  if (follower && !plan) err << follower_messages.str();
  const bool planned = plan && !plan->graph.experiments.empty();
  if (ranks != nullptr && ranks->leader()) TellTheOthersThePlan(*ranks, planned);
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
