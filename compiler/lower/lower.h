// Lowering: the checked program to the execution graph.
//
// Each experiment becomes nodes: its models and datasets (load, filter, split), and for each stage the rule
// that picks its items (select, pairs or groups), their weights, the train node with its loss graph, and
// the export of the trained model; an evaluation if the experiment has one. Lowering is literal: every use
// of a value makes nodes and every occurrence of a subexpression makes loss operations, so the passes that
// follow (common-subexpression elimination, constant folding, merging of equal nodes) have the work to do
// and can be tested for it. Nodes get no hashes here; passes/pipeline.cpp computes them.
#pragma once

#include "compiler/ir/ir.h"
#include "compiler/sema/checked.h"

namespace fusec {

ir::Graph Lower(const sema::CheckedProgram& program);

/// A loss term as a loss graph: one operation per node of the term tree, nothing shared.
ir::LossGraph LowerLoss(const sema::CheckedObjective& objective);

}  // namespace fusec
