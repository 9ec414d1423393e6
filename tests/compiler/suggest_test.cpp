// "Did you mean": edit distance and Elm's budget (1 edit for names of 3 letters or fewer, 2 otherwise).
#include <gtest/gtest.h>

#include "compiler/diag/suggest.h"

namespace fusec {
namespace {

TEST(EditDistance, CountsInsertionsDeletionsSubstitutionsAndTranspositions) {
  EXPECT_EQ(EditDistance("simpo", "simpo"), 0u);
  EXPECT_EQ(EditDistance("simpo2", "simpo"), 1u);
  EXPECT_EQ(EditDistance("tua", "tau"), 1u);  // a transposition is one edit
  EXPECT_EQ(EditDistance("", "abc"), 3u);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
}

TEST(Suggest, OffersTheClosestCandidateWithinBudget) {
  std::vector<std::string> candidates = {"dpo", "simpo", "ipo", "cdpo", "rloo"};
  EXPECT_EQ(Suggest("simpo2", candidates), "simpo");
  EXPECT_EQ(Suggest("dpoo", candidates), "dpo");
  EXPECT_EQ(Suggest("xyz", candidates), std::nullopt);
  EXPECT_EQ(Suggest("DPO", candidates), "dpo");  // a difference of case is one edit
  // Short names get one edit only: `ab` is two edits from `dpo`... and from nothing else.
  EXPECT_EQ(Suggest("ab", candidates), std::nullopt);
  // The name itself is not a suggestion.
  EXPECT_EQ(Suggest("dpo", {"dpo"}), std::nullopt);
  // Ties go to the alphabetically first candidate.
  EXPECT_EQ(Suggest("cat", {"cut", "bat"}), "bat");
}

TEST(Suggest, FormatsTheHelpText) {
  EXPECT_EQ(DidYouMean("epoch", {"epochs", "batch"}), "did you mean `epochs`?");
  EXPECT_EQ(DidYouMean("zzzz", {"epochs"}), "");
}

}  // namespace
}  // namespace fusec
