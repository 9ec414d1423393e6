#!/usr/bin/env bash
# The layering DESIGN.md asks for, checked on the sources:
#  - ANTLR's types stay in compiler/parse/ (and the generated grammar library);
#  - the compiler never includes LibTorch;
#  - the IR is the contract: compiler/ir/, runtime/ and bench/ include no compiler/sema/ header (the runtime
#    reads IR payloads, never sema's terms or checked structures);
#  - the executor (runtime/exec) walks a planned graph: it neither includes nor links the compiler's driver
#    (runtime/cli plans).
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
fail=0
antlr=$(grep -rlE '#include [<"](antlr4|Fuse(Lexer|Parser|Visitor|BaseVisitor)\.h)' "$root/compiler" "$root/tests" \
          --include='*.h' --include='*.cpp' | grep -v "^$root/compiler/parse/" || true)
if [[ -n "$antlr" ]]; then
  echo "FAIL: ANTLR headers included outside compiler/parse/:"; echo "$antlr"; fail=1
fi
torch=$(grep -rlE '#include [<"](torch/|ATen/|c10/)' "$root/compiler" --include='*.h' --include='*.cpp' || true)
if [[ -n "$torch" ]]; then
  echo "FAIL: LibTorch headers included in compiler/:"; echo "$torch"; fail=1
fi
parse_header=$(grep -lE 'antlr|Fuse(Parser|Lexer)' "$root/compiler/parse/parse.h" || true)
if [[ -n "$parse_header" ]]; then
  echo "FAIL: compiler/parse/parse.h mentions ANTLR"; fail=1
fi
sema=$(grep -rlE '#include [<"]compiler/sema/' "$root/compiler/ir" "$root/runtime" "$root/bench" \
         --include='*.h' --include='*.cpp' || true)
if [[ -n "$sema" ]]; then
  echo "FAIL: sema headers included past the IR (compiler/ir, runtime, bench):"; echo "$sema"; fail=1
fi
driver=$(grep -rlE '#include [<"]compiler/driver/' "$root/runtime/exec" --include='*.h' --include='*.cpp' || true)
if [[ -n "$driver" ]]; then
  echo "FAIL: runtime/exec includes the driver:"; echo "$driver"; fail=1
fi
# Linking: the executor's library and the IR's name neither the driver nor sema.
exec_links=$(grep -E 'target_link_libraries\((fusec_rt_exec|fusec_rt_train|fusec_rt_rules|fusec_rt_objectives) ' \
               "$root/runtime/CMakeLists.txt" | grep -E 'fusec_driver|fusec_sema' || true)
if [[ -n "$exec_links" ]]; then
  echo "FAIL: runtime/CMakeLists.txt links fusec_rt_exec with the driver or sema:"; echo "$exec_links"; fail=1
fi
ir_links=$(grep -E 'target_link_libraries\(fusec_ir ' "$root/compiler/CMakeLists.txt" | grep -E 'fusec_sema|fusec_driver' || true)
if [[ -n "$ir_links" ]]; then
  echo "FAIL: compiler/CMakeLists.txt links fusec_ir with sema:"; echo "$ir_links"; fail=1
fi
[[ $fail -eq 0 ]] && echo "layering: ANTLR stays in compiler/parse, the compiler has no LibTorch, the IR and the runtime no sema, the executor no driver"
exit $fail
