// export: a trained model copied to the run directory as a Hugging Face model directory.

#include "runtime/exec/run_context.h"

namespace fusec::rt {

NodeValue RunExport(const ir::Node& node, RunContext& run) {
  const ModelHandle model = *run.Input(node, "model").model;
  std::filesystem::path to = run.Rebase(node.as<ir::Export>().path);
  CopyDirectory(model.dir, to);
  run.reporter().Exported(RunContext::Label(node), run.Published(to).string());
  return NodeValue{model};
}

}  // namespace fusec::rt
