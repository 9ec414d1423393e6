#!/usr/bin/env bash
# The layering DESIGN.md asks for, checked on the sources:
#  - ANTLR's types stay in compiler/parse/ (and the generated grammar library);
#  - the compiler never includes LibTorch.
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
[[ $fail -eq 0 ]] && echo "layering: ANTLR stays in compiler/parse, the compiler has no LibTorch"
exit $fail
