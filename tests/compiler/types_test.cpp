// Types, ranges and term printing: the building blocks of the type checker.
#include <gtest/gtest.h>

#include "compiler/sema/sema.h"

namespace fusec::sema {
namespace {

TEST(Types, AssignabilityWidensIntsOnlyAndRespectsStructure) {
  EXPECT_TRUE(IsAssignable(*types::Int(), *types::Float()));
  EXPECT_FALSE(IsAssignable(*types::Float(), *types::Int()));
  EXPECT_TRUE(IsAssignable(*types::List(types::Int()), *types::List(types::Float())));
  EXPECT_FALSE(IsAssignable(*types::List(types::String()), *types::List(types::Float())));
  EXPECT_FALSE(IsAssignable(*types::Opaque(TypeKind::Model), *types::Opaque(TypeKind::Dataset)));
  // A stage is usable as the model it produces, not the other way round.
  EXPECT_TRUE(IsAssignable(*types::Opaque(TypeKind::Stage), *types::Opaque(TypeKind::Model)));
  EXPECT_FALSE(IsAssignable(*types::Opaque(TypeKind::Model), *types::Opaque(TypeKind::Stage)));
  EXPECT_EQ(Join(types::Opaque(TypeKind::Stage), types::Opaque(TypeKind::Model)), types::Opaque(TypeKind::Model));
  EXPECT_FALSE(IsAssignable(*types::Enum(EnumKind::Schedule), *types::Enum(EnumKind::Precision)));
  // The error type fits anywhere: it has already been reported.
  EXPECT_TRUE(IsAssignable(*types::Error(), *types::Opaque(TypeKind::Model)));
  auto record = types::Record({{"a", types::Int()}, {"b", types::String()}});
  auto wider = types::Record({{"b", types::String()}, {"a", types::Float()}});
  EXPECT_TRUE(IsAssignable(*record, *wider));
  EXPECT_FALSE(IsAssignable(*wider, *record));
}

TEST(Types, JoinAndNames) {
  EXPECT_EQ(Join(types::Int(), types::Float()), types::Float());
  EXPECT_EQ(Join(types::Float(), types::Int()), types::Float());
  EXPECT_EQ(Join(types::String(), types::Int()), nullptr);
  EXPECT_EQ(ToString(types::List(types::List(types::Float()))), "list[list[float]]");
  EXPECT_EQ(ToString(types::Record({{"sft", types::Opaque(TypeKind::Dataset)}})), "{sft: dataset}");
  EXPECT_EQ(ToString(types::Enum(EnumKind::Schedule)), "schedule");
  EXPECT_EQ(TypeByName("objective"), types::Opaque(TypeKind::Objective));
  EXPECT_EQ(TypeByName("precision"), types::Enum(EnumKind::Precision));
  EXPECT_EQ(TypeByName("response"), nullptr);  // not something a parameter can hold
}

TEST(Range, ContainsAndPrints) {
  Range positive{0.0, std::nullopt, false, true};
  EXPECT_FALSE(positive.Contains(0));
  EXPECT_TRUE(positive.Contains(1e-9));
  EXPECT_EQ(positive.ToString(), "> 0");
  Range warmup{0.0, 1.0, true, false};
  EXPECT_TRUE(warmup.Contains(0));
  EXPECT_FALSE(warmup.Contains(1));
  EXPECT_EQ(warmup.ToString(), "in [0, 1)");
  Range eps{0.0, 0.5, true, false};
  EXPECT_EQ(eps.ToString(), "in [0, 0.5)");
}

TEST(Terms, PrintWithMinimalParentheses) {
  auto leaf = [](TermOp op, std::string ref) {
    auto term = std::make_shared<Term>();
    term->op = op;
    term->ref = std::move(ref);
    return TermRef(term);
  };
  auto binary = [](std::string op, TermRef a, TermRef b) {
    auto term = std::make_shared<Term>();
    term->op = TermOp::Binary;
    term->name = std::move(op);
    term->args = {std::move(a), std::move(b)};
    return TermRef(term);
  };
  auto number = [](double value) {
    auto term = std::make_shared<Term>();
    term->number = value;
    return TermRef(term);
  };
  TermRef ratio = binary("-", leaf(TermOp::Logp, "y"), leaf(TermOp::RefLogp, "y"));
  EXPECT_EQ(ToString(binary("*", number(10), ratio)), "10.0 * (logp(y) - ref_logp(y))");
  EXPECT_EQ(ToString(binary("-", ratio, ratio)), "logp(y) - ref_logp(y) - (logp(y) - ref_logp(y))");
  EXPECT_EQ(ToString(binary("^", binary("^", number(2), number(3)), number(2))), "(2.0 ^ 3.0) ^ 2.0");
  EXPECT_EQ(FormatFloat(5e-6), "5e-06");
  EXPECT_EQ(FormatFloat(1), "1.0");
  EXPECT_EQ(FormatFloat(0.1), "0.1");
}

}  // namespace
}  // namespace fusec::sema
