#!/usr/bin/env python3
"""Regenerates tests/runtime/testdata/nmt_nfkc.charsmap and precompiled_spm.json, the Precompiled normalizer's
test data, with SentencePiece's own tools (Debian's `sentencepiece` package, 0.1.97; unpacked is enough:
`apt-get download sentencepiece libsentencepiece0 && dpkg -x` each into a prefix, then
`SPM=<prefix>/usr/bin LD_LIBRARY_PATH=<prefix>/usr/lib/x86_64-linux-gnu python3 make_precompiled_testdata.py`).

The charsmap is the `nmt_nfkc` rule set that T5, mT5 and XLM-R ship (spm_train compiles it into a model's
normalizer_spec.precompiled_charsmap); precompiled_spm.json holds a corpus, spm_normalize's output for each
line (the charsmap alone: no extra-whitespace removal, no dummy prefix), and `hf`: Hugging Face's rule
(normalizers/precompiled.rs) applied to the rules spm_normalize --decompile lists, over the `regex` module's
extended grapheme clusters (\X): a cluster under 6 bytes becomes the target of the shortest rule source that
is a prefix of it, if any; otherwise each character its own rule's target, or itself. Where `hf` and `spm`
differ, the two libraries do."""
import json
import os
import random
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SPM = os.environ.get("SPM", "/usr/bin")

FIXED = [
    "Hello, world!", "Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ １２３", "ﬁﬂﬀ ligatures", "e\u0301 a\u0300 o\u0308 decomposed",
    "é à ö composed", "①②③ ⑴ ⒜", "Ⅻ ⅻ", "x² H₂O", "ﾊﾝｶｸ ｶﾞｷﾞ", "ｶ\uff9e", "㍿ ㌔ ㎏", "ﷺ ﻻ",
    "\u1100\u1161\u11a8 jamo", "한국어", "日本語のテキスト", "中文", "Ελληνικά ΐ", "русский Ё",
    "tab\there", "nbsp\u00a0here", "zero\u200bwidth\u200djoin", "bom\ufeff", "ideographic\u3000space",
    "ctrl\x01\x02\x7f\x1f", "soft\u00adhyphen", "～ full-width tilde ～x", "〜 wave dash", "…", "‘quotes’ “double”",
    "👩‍👩‍👧‍👦", "🇫🇷🇯🇵", "👍🏽", "क़ ड़ nukta", "Å Å Å", "µ μ", "ǅ ǈ", "ſ", "\u2126 \u212b",
    "\u0958\u0959", "\u00a8 \u00b4", "\u2002en\u2003em\u2009thin", "\u2028line\u2029para", "￥ ￦", "\ufffd",
    "a\u0301\u0302\u0303\u0304", "\u0915\u094d\u0937", "ก่ำ", "ༀ", "\u0f73", "ä\u0304", "\u1e9b\u0323",
]

def corpus():
    rng = random.Random(15)
    pool = [c for line in FIXED for c in line] + list("abc XYZ 0123 .,;")
    lines = list(FIXED)
    for _ in range(200):
        lines.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 24))).replace("\n", " ").replace("\r", " "))
    return [line for line in lines if "\n" not in line and "\r" not in line]

def main():
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        train = os.path.join(tmp, "train.txt")
        with open(train, "w", encoding="utf-8") as f:
            rng = random.Random(1)
            for _ in range(300):
                f.write(" ".join("".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(1, 8))) for _ in range(10)) + "\n")
        prefix = os.path.join(tmp, "nmt")
        subprocess.run([f"{SPM}/spm_train", f"--input={train}", f"--model_prefix={prefix}", "--vocab_size=40",
                        "--normalization_rule_name=nmt_nfkc", "--minloglevel=2"], check=True, env=env)
        model = open(prefix + ".model", "rb").read()
        with open(os.path.join(HERE, "testdata", "nmt_nfkc.charsmap"), "wb") as f:
            f.write(precompiled_charsmap(model))
        lines = corpus()
        text_path = os.path.join(tmp, "corpus.txt")
        with open(text_path, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
        out = subprocess.run([f"{SPM}/spm_normalize", f"--model={prefix}.model", "--remove_extra_whitespaces=false",
                              f"--input={text_path}"], check=True, env=env, capture_output=True).stdout.decode("utf-8")
        normalized = out.split("\n")[:len(lines)]
        tsv = os.path.join(tmp, "rules.tsv")
        subprocess.run([f"{SPM}/spm_normalize", f"--model={prefix}.model", "--decompile", f"--output={tsv}"],
                       check=True, env=env)
        rules = {}
        for line in open(tsv, encoding="utf-8"):
            source, target = line.rstrip("\n").split("\t")[:2]
            rules["".join(chr(int(c, 16)) for c in source.split())] = "".join(chr(int(c, 16)) for c in target.split())
    hf = [hugging_face_precompiled(rules, line) for line in lines]
    with open(os.path.join(HERE, "testdata", "precompiled_spm.json"), "w", encoding="utf-8") as f:
        json.dump({"texts": lines, "spm": normalized, "hf": hf}, f, ensure_ascii=False, indent=0)

def hugging_face_precompiled(rules, text):
    import regex
    out = []
    for cluster in regex.findall(r"\X", text):
        if len(cluster.encode("utf-8")) < 6:
            prefixes = [cluster[:k] for k in range(1, len(cluster) + 1) if cluster[:k] in rules]
            if prefixes:
                out.append(rules[prefixes[0]])
                continue
        out.extend(rules.get(c, c) for c in cluster)
    return "".join(out)

def fields(data):
    """The (field number, wire type, value) of a protobuf message."""
    def varint(i):
        result, shift = 0, 0
        while True:
            byte = data[i]
            i += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result, i
    i = 0
    while i < len(data):
        key, i = varint(i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(i)
        elif wire == 2:
            length, i = varint(i)
            value, i = data[i:i + length], i + length
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value

def precompiled_charsmap(model):
    # ModelProto.normalizer_spec = 3; NormalizerSpec.precompiled_charsmap = 2.
    spec = next(v for n, w, v in fields(model) if n == 3)
    return next(v for n, w, v in fields(spec) if n == 2)

if __name__ == "__main__":
    main()
