// `fusec ARGS...` run in-process (fusec::Main) for the driver tests: its exit status, stdout and stderr.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "compiler/driver/driver.h"

namespace fusec::test_support {

struct Outcome {
  int status;
  std::string out;
  std::string err;
};

inline Outcome Fusec(std::vector<std::string> args) {
  std::ostringstream out;
  std::ostringstream err;
  int status = Main(args, out, err);
  return {status, out.str(), err.str()};
}

}  // namespace fusec::test_support
