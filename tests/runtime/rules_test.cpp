// Data rules on small hand-made data: the rules come from .fuse through the real compiler, the expected
// items and weights are written out here.
#include "runtime/exec/rules.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "tests/runtime/compiled_loss.h"

namespace fusec::rt {
namespace {

/// The rule and weighting of stage `s` of a one-stage experiment.
struct StageRules {
  ir::Payload rule;
  ir::ExprRef weight;
};

StageRules Compile(const std::string& stage) {
  std::string text =
      "import std.objectives.{dpo, rloo}\nimport std.pairing.{wrpo_triples, gap, best_vs_worst_within_source}\n"
      "experiment e {\n  target = hf_model(\"m\")\n  data = jsonl(\"d.jsonl\")\n  stage s = " +
      stage + "\n}\n";
  ir::Graph graph = CompileFuse(text, /*optimise=*/false);
  StageRules out;
  for (const ir::Node& node : graph.nodes) {
    if (node.kind() == ir::NodeKind::Select || node.kind() == ir::NodeKind::Pairs ||
        node.kind() == ir::NodeKind::Groups) {
      out.rule = node.payload;
    }
    if (const auto* weight = node.get_if<ir::Weight>()) out.weight = weight->weight;
  }
  return out;
}

PromptRecord Prompt(const std::string& id, std::vector<std::pair<std::string, double>> responses) {
  PromptRecord record;
  record.id = id;
  record.prompt = "question " + id;
  for (const auto& [source, reward] : responses) record.responses.push_back({source, source + " says", reward});
  return record;
}

// p1: A has 0.9 and 0.2, B has 0.5 and 0.7, C has 0.1. p2: a tie between A and B at 0.3.
Dataset Data() {
  return {Prompt("p1", {{"A", 0.9}, {"A", 0.2}, {"B", 0.5}, {"B", 0.7}, {"C", 0.1}}),
          Prompt("p2", {{"A", 0.3}, {"B", 0.3}})};
}

/// Items as "prompt:response,response" strings, for readable expectations.
std::vector<std::string> Describe(const ItemSet& items) {
  std::vector<std::string> out;
  for (const Item& item : items.items) {
    std::string text = "p" + std::to_string(item.prompt + 1) + ":";
    for (size_t i = 0; i < item.responses.size(); ++i) text += (i ? "," : "") + std::to_string(item.responses[i]);
    out.push_back(text);
  }
  return out;
}

std::multiset<std::string> AsSet(const ItemSet& items) {
  auto described = Describe(items);
  return {described.begin(), described.end()};
}

ItemSet RunRule(const StageRules& rules, const Dataset& data) {
  if (auto* select = std::get_if<ir::Select>(&rules.rule)) return Select(data, select->rule);
  if (auto* pairs = std::get_if<ir::Pairs>(&rules.rule)) return Pair(data, pairs->rule);
  return Group(data, std::get<ir::Groups>(rules.rule).rule);
}

TEST(Selections, TopKBestAllAndFilters) {
  Dataset data = Data();
  // The two best of each prompt; p2's tie keeps response order.
  EXPECT_EQ(Describe(RunRule(Compile("fuse_sft(k: 2) { init = target }"), data)),
            (std::vector<std::string>{"p1:0", "p1:3", "p2:0", "p2:1"}));
  // The best of each source.
  EXPECT_EQ(AsSet(RunRule(Compile("sft { init = target; select = best over source }"), data)),
            (std::multiset<std::string>{"p1:0", "p1:3", "p1:4", "p2:0", "p2:1"}));
  // All responses over a reward threshold.
  EXPECT_EQ(AsSet(RunRule(Compile("sft { init = target; select = all where reward > 0.4 }"), data)),
            (std::multiset<std::string>{"p1:0", "p1:2", "p1:3"}));
  // A reward-gap filter drops p2, whose responses are tied.
  ItemSet gap = RunRule(
      Compile("sft { init = target; select = best where max(reward) over prompt - min(reward) over prompt >= 0.1 }"),
      data);
  EXPECT_EQ(Describe(gap), (std::vector<std::string>{"p1:0"}));
  EXPECT_EQ(gap.dropped, 1);
  // By sample index within the source: the first sample of each source.
  EXPECT_EQ(AsSet(RunRule(Compile("sft { init = target; select = all where index == 0 }"), data)),
            (std::multiset<std::string>{"p1:0", "p1:2", "p1:4", "p2:0", "p2:1"}));
}

TEST(Pairings, WithinSourceWithinPromptAllPairsAcrossSources) {
  Dataset data = Data();
  // FusePO: best vs worst of each source; C (one response) and p2's single-response sources give none.
  ItemSet fuse_po = RunRule(Compile("fuse_po { init = target; objective = dpo(beta: 0.1) }"), data);
  EXPECT_EQ(fuse_po.roles, (std::vector<std::string>{"chosen", "rejected"}));
  EXPECT_EQ(Describe(fuse_po), (std::vector<std::string>{"p1:0,1", "p1:3,2"}));
  EXPECT_EQ(fuse_po.dropped, 3);
  // The baselines' pair: best vs worst of the prompt; p2's tie picks the same response twice, so no pair.
  EXPECT_EQ(Describe(RunRule(Compile("po { init = target; objective = dpo(beta: 0.1) }"), data)),
            (std::vector<std::string>{"p1:0,4"}));
  // Every strictly better pair at least 0.3 apart.
  EXPECT_EQ(AsSet(RunRule(Compile("po { init = target; pairs = all_pairs(by: reward, min_gap: 0.3) over prompt; "
                                  "objective = dpo(beta: 0.1) }"),
                          data)),
            (std::multiset<std::string>{"p1:0,1", "p1:0,2", "p1:0,4", "p1:3,1", "p1:3,4", "p1:2,4", "p1:2,1"}));
  // Sources' best responses against each other; p2's sources tie.
  EXPECT_EQ(AsSet(RunRule(Compile("po { init = target; pairs = across_sources(by: reward); objective = dpo(beta: 0.1) }"),
                          data)),
            (std::multiset<std::string>{"p1:0,3", "p1:0,4", "p1:3,4"}));
  // A filter on whole pairs reads the roles.
  EXPECT_EQ(Describe(RunRule(Compile("po { init = target; pairs = best_vs_worst_within_source where "
                                     "gap(chosen, rejected) >= 0.5; objective = dpo(beta: 0.1) }"),
                             data)),
            (std::vector<std::string>{"p1:0,1"}));
}

TEST(Pairings, WrpoTriples) {
  Dataset data = {Prompt("p", {{"target", 0.2}, {"X", 0.8}, {"target", 0.6}, {"Y", 0.9}, {"target", 0.4}})};
  ItemSet triples = RunRule(
      Compile("po { init = target; pairs = wrpo_triples(\"target\"); objective = dpo(beta: 0.1) }"), data);
  EXPECT_EQ(triples.roles, (std::vector<std::string>{"source_chosen", "chosen", "rejected"}));
  EXPECT_EQ(Describe(triples), (std::vector<std::string>{"p1:3,2,0"}));
}

TEST(Groupings, BySourceDropsGroupsOfOne) {
  ItemSet groups = RunRule(Compile("fuse_po { init = target; groups = by source; objective = rloo() }"), Data());
  EXPECT_EQ(groups.groups, 2);
  EXPECT_EQ(groups.dropped, 3);
  ASSERT_EQ(groups.items.size(), 4U);
  EXPECT_EQ(groups.items[0].group, 0);
  EXPECT_EQ(groups.items[1].group, 0);
  EXPECT_EQ(groups.items[2].group, 1);
  EXPECT_EQ(Describe(groups), (std::vector<std::string>{"p1:0", "p1:1", "p1:2", "p1:3"}));
}

double Softmax(double x, std::vector<double> all) {
  double sum = 0;
  for (double v : all) sum += std::exp(v);
  return std::exp(x) / sum;
}

TEST(Weightings, FuseSftFusePoAndTheOthers) {
  Dataset data = Data();
  // FuseSFT: softmax of the selected responses' rewards within each prompt, temperature 0.5.
  StageRules sft = Compile("fuse_sft(k: 2, temperature: 0.5) { init = target }");
  ItemSet items = RunRule(sft, data);
  Weigh(data, sft.weight, items);
  EXPECT_NEAR(items.items[0].weight, Softmax(0.9 / 0.5, {0.9 / 0.5, 0.7 / 0.5}), 1e-12);
  EXPECT_NEAR(items.items[1].weight, Softmax(0.7 / 0.5, {0.9 / 0.5, 0.7 / 0.5}), 1e-12);
  EXPECT_NEAR(items.items[2].weight, 0.5, 1e-12);

  // FusePO: a softmax over sources of each source's best reward; each pair gets its source's share.
  StageRules po = Compile("fuse_po(tau: 2.0) { init = target; objective = dpo(beta: 0.1) }");
  items = RunRule(po, data);
  Weigh(data, po.weight, items);
  ASSERT_EQ(items.items.size(), 2U);  // sources A and B of p1 (C has no pair)
  EXPECT_NEAR(items.items[0].weight, Softmax(0.9 / 2, {0.9 / 2, 0.7 / 2}), 1e-12);
  EXPECT_NEAR(items.items[1].weight, Softmax(0.7 / 2, {0.9 / 2, 0.7 / 2}), 1e-12);

  // Rank: the best of n gets n, normalised; uniform; normalize; a constant.
  StageRules rank = Compile("fuse_sft(k: 3) { init = target; weight = rank(reward) over prompt }");
  items = RunRule(rank, data);
  Weigh(data, rank.weight, items);
  EXPECT_NEAR(items.items[0].weight, 3.0 / 6, 1e-12);  // p1: 0.9, 0.7, 0.5
  EXPECT_NEAR(items.items[2].weight, 1.0 / 6, 1e-12);
  EXPECT_NEAR(items.items[3].weight, 0.5, 1e-12);  // p2: tied, mean ranks 1.5 of 3
  StageRules uniform = Compile("fuse_sft(k: 3) { init = target; weight = uniform over prompt }");
  items = RunRule(uniform, data);
  Weigh(data, uniform.weight, items);
  EXPECT_NEAR(items.items[0].weight, 1.0 / 3, 1e-12);
  EXPECT_NEAR(items.items[3].weight, 0.5, 1e-12);
  StageRules normalize = Compile("fuse_sft(k: 2) { init = target; weight = normalize(reward) over source }");
  items = RunRule(normalize, data);
  Weigh(data, normalize.weight, items);
  EXPECT_NEAR(items.items[0].weight, 1.0, 1e-12);  // A's only selected response in p1
  StageRules constant = Compile("fuse_sft(k: 2) { init = target; weight = 2 * reward }");
  items = RunRule(constant, data);
  Weigh(data, constant.weight, items);
  EXPECT_NEAR(items.items[0].weight, 1.8, 1e-12);

  // `over sources` on response items: each source's share, split among its items.
  StageRules sources = Compile("fuse_sft(k: 5) { init = target; weight = uniform over sources }");
  items = RunRule(sources, data);
  Weigh(data, sources.weight, items);
  double p1_total = 0;
  for (const Item& item : items.items) {
    if (item.prompt == 0) p1_total += item.weight;
  }
  EXPECT_NEAR(p1_total, 1.0, 1e-12);
  EXPECT_NEAR(items.items.back().weight, 0.5, 1e-12);  // p2: two sources, one response each
}

// `len` reads each response's token count, which the executor attaches (ResponseRecord::tokens) from the
// stage's tokenizer before a rule or weighting that reads it.
TEST(Rules, LenReadsEachResponsesTokenCount) {
  Dataset data = Data();
  const std::vector<std::vector<int64_t>> tokens = {{3, 12, 5, 7, 2}, {9, 4}};
  for (size_t p = 0; p < data.size(); ++p) {
    for (size_t r = 0; r < data[p].responses.size(); ++r) data[p].responses[r].tokens = tokens[p][r];
  }
  EXPECT_EQ(Describe(RunRule(Compile("sft { init = target; select = all where len <= 5 }"), data)),
            (std::vector<std::string>{"p1:0", "p1:2", "p1:4", "p2:1"}));
  // The shortest response of each prompt.
  EXPECT_EQ(Describe(RunRule(Compile("sft { init = target; select = top_k(1, by: -len) }"), data)),
            (std::vector<std::string>{"p1:4", "p2:1"}));
  // FusePO's pairs (p1:0,1 and p1:3,2) where the chosen response is no longer than the rejected one.
  EXPECT_EQ(Describe(RunRule(Compile("po { init = target; pairs = best_vs_worst_within_source where "
                                     "len(chosen) <= len(rejected); objective = dpo(beta: 0.1) }"),
                             data)),
            (std::vector<std::string>{"p1:0,1"}));
  StageRules by_length = Compile("sft { init = target; select = all where len <= 5; weight = len / 10 }");
  ItemSet items = RunRule(by_length, data);
  Weigh(data, by_length.weight, items);
  ASSERT_EQ(items.items.size(), 4U);
  EXPECT_NEAR(items.items[0].weight, 0.3, 1e-12);
  EXPECT_NEAR(items.items[3].weight, 0.4, 1e-12);
  // Without the counts (a rule the executor was not told reads `len`) it is an error, never a silent 0.
  EXPECT_THROW(RunRule(Compile("sft { init = target; select = all where len <= 5 }"), Data()), RuleError);
}

TEST(Rules, ErrorsNameThePrompt) {
  Dataset data = Data();
  data[1].responses[1].reward.reset();
  try {
    RunRule(Compile("fuse_sft(k: 2) { init = target }"), data);
    FAIL() << "expected a RuleError";
  } catch (const RuleError& error) {
    EXPECT_NE(std::string(error.what()).find("prompt `p2`"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("has no reward"), std::string::npos) << error.what();
  }
  StageRules negative = Compile("fuse_sft(k: 2) { init = target; weight = normalize(reward - 0.8) over prompt }");
  ItemSet items = RunRule(negative, Data());
  EXPECT_THROW(Weigh(Data(), negative.weight, items), RuleError);
}

TEST(Splits, AreDisjointStableAndNearTheirFractions) {
  Dataset data;
  for (int i = 0; i < 2000; ++i) data.push_back(Prompt("id" + std::to_string(i), {{"A", 1.0}}));
  std::vector<std::pair<std::string, double>> fractions = {{"sft", 0.4}, {"po", 0.5}, {"eval", 0.1}};
  Dataset sft = SplitPart(data, fractions, "sft", 42);
  Dataset po = SplitPart(data, fractions, "po", 42);
  Dataset eval = SplitPart(data, fractions, "eval", 42);
  EXPECT_EQ(sft.size() + po.size() + eval.size(), data.size());
  EXPECT_NEAR(static_cast<double>(sft.size()) / 2000, 0.4, 0.04);
  EXPECT_NEAR(static_cast<double>(eval.size()) / 2000, 0.1, 0.03);
  std::set<std::string> ids;
  for (const Dataset* part : {&sft, &po, &eval}) {
    for (const PromptRecord& record : *part) EXPECT_TRUE(ids.insert(record.id).second) << record.id;
  }
  // Reordering the file changes nothing; another seed changes the split.
  Dataset reversed(data.rbegin(), data.rend());
  std::set<std::string> sft_ids;
  for (const PromptRecord& record : sft) sft_ids.insert(record.id);
  for (const PromptRecord& record : SplitPart(reversed, fractions, "sft", 42)) EXPECT_EQ(sft_ids.count(record.id), 1U);
  std::set<std::string> other_seed;
  for (const PromptRecord& record : SplitPart(data, fractions, "sft", 7)) other_seed.insert(record.id);
  EXPECT_NE(other_seed, sft_ids);
  // keep_sources.
  Dataset mixed = {Prompt("m", {{"A", 1}, {"B", 2}}), Prompt("n", {{"B", 3}})};
  Dataset kept = KeepSources(mixed, {"A"});
  ASSERT_EQ(kept.size(), 1U);
  EXPECT_EQ(kept[0].responses.size(), 1U);
}

}  // namespace
}  // namespace fusec::rt
