// sample: placeholder until the sample node's body lands (issue 16); refuses to run rather than guess.

#include "runtime/exec/run_context.h"

namespace fusec::rt {

NodeValue RunSample(const ir::Node& /*node*/, RunContext& /*run*/) {
  throw RunError(RunErrorKind::Unsupported, "the `sample` step is not implemented by this runtime yet");
}

}  // namespace fusec::rt
