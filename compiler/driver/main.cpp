#include <iostream>

#include "compiler/driver/driver.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return fusec::Main(args, std::cout, std::cerr);
}
