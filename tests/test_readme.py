"""The README's examples are tests: every fenced bash and python block runs, in order, as written.

The blocks run in one temporary folder that holds small real files (Python's own
documentation and sources, see mmtok/inputs/sampletext.py) under every file
name the examples use; later blocks see the stores earlier blocks built. Shell
blocks run with ``bash -e`` and this project's ``mmtok`` first on PATH; Python
blocks run in one interpreter session, in order, as a reader following the
README would type them (so ``data.save()`` sees the ``data`` of an earlier
block). A block preceded by ``<!-- readme-test: skip (reason) -->`` is not run;
one preceded by ``<!-- readme-test: needs MODULE -->`` runs only where MODULE
imports. Each block must exit cleanly; the blocks listed in ``EXPECT`` must
also show their key output.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

from mmtok.inputs.sampletext import python_docs_prose, python_sources

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"<!--\s*readme-test:\s*(skip|needs)\b\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")

# Key output of a block, by a line that identifies it: a regex its output
# (shell) must match, or Python statements (asserts) run in the session after it.
EXPECT = {
    "mmtok build shakespeare.txt -o shakespeare.mmtok": [
        r"shakespeare\.mmtok: [\d,]+ tokens, 1 document",
        r"politics\.mmtok: [\d,]+ tokens, 300 documents",
        r"wide\.mmtok: [\d,]+ tokens, 300 documents",
        r"corpus\.mmtok: [\d,]+ tokens, 400 documents",  # 300 JSON lines, then 100 lines of more.txt
        r"news\.mmtok: [\d,]+ tokens, 202 documents",  # 200 JSON lines, then a.txt and b.txt
        r"documents   400 \(line by line\)",  # the append kept the store line by line
        r'"line_by_line": true',
        r"corpus\.mmtok: OK",
    ],
    'store = mmtok.build("shakespeare.txt", "shakespeare.mmtok")': (
        "assert store.num_documents == 300 and store.tokens[1000:2024].shape == (1024,)\n"
        "assert len(store.documents[3:5]) == 2 and lengths.shape == (5,) and tokens.shape == (lengths.sum(),)\n"
    ),
    'data = TokenDataset.open("corpus.mmtok", block_size=2048)': (
        "assert batch.shape == (64, 2048) and data.block_size == 2048 and len(data) == 400\n"
        "assert data.decode(0).startswith(open('corpus-first-line.txt', encoding='utf-8').read()[:200])\n"
    ),
    "mmtok export corpus.mmtok -o dataset_cache.tar.gz": [
        r"dataset_cache\.tar\.gz: [\d,]+ tokens, 400 documents",
        r"corpus-copy\.mmtok: [\d,]+ tokens, 400 documents",
        r"aitextgen_cache\.tar\.gz: [\d,]+ tokens",
    ],
    "data.save()": "assert data.block_size == 256 and len(data) == 400\n",
    "merged = merge_datasets([a, b])": (
        "assert len(merged) == len(a) + len(b) and len(mixed) == 100_000 and 'repeated' in repr(mixed)\n"
    ),
    "state = order.state_dict()": (
        "assert order.position == 640 and next(iter(order)) == int(order.indices(640, 641)[0])\n"
    ),
    "mmtok merge politics.mmtok news.mmtok -o merged.mmtok": [
        r"merged\.mmtok: [\d,]+ samples, merge of 2 stores",
        r"mixed\.mmtok: 10,000 samples, blend of 2 stores",
        r"- politics\.mmtok: 300 samples \(line by line\); weight 0\.7, gives [\d,]+: repeated [\d.]+x",
        r"input       blend: [\d,]+ tokens, 10,000 documents\n  blend by tokens of 2 sources",
    ],
}


def readme_blocks(text: str) -> list[dict]:
    """Every fenced bash/python block: its language, code, first line number and marker (or None)."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        lang, start = match.group(1), i
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.search(previous)
        if lang in ("bash", "sh", "shell", "python"):
            blocks.append({"lang": "python" if lang == "python" else "bash", "line": start + 1,
                           "code": "\n".join(lines[start + 1:end]) + "\n",
                           "marker": (marker.group(1), marker.group(2)) if marker else None})
        i = end + 1
    return blocks


def _write_inputs(folder: pathlib.Path) -> None:
    """Small real files under the names the README's examples use."""
    import zstandard

    prose = python_docs_prose()
    paragraphs = [p.strip() for p in prose.split("\n\n") if p.strip()]
    (folder / "shakespeare.txt").write_text(prose[:120_000], encoding="utf-8")
    (folder / "corpus.txt").write_text(prose[120_000:220_000], encoding="utf-8")
    (folder / "big.txt").write_text(python_sources(300_000), encoding="utf-8")
    (folder / "a.txt").write_text(prose[220_000:240_000], encoding="utf-8")
    (folder / "b.txt").write_text(prose[240_000:260_000], encoding="utf-8")
    lines = [p.replace("\n", " ") for p in paragraphs]
    (folder / "more.txt").write_text("\n".join(lines[1000:1100]) + "\n", encoding="utf-8")
    with open(folder / "politics.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        writer.writerows([p] for p in paragraphs[:300])
    with open(folder / "wide.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "body", "source"])
        writer.writerows([i, p, "pydoc"] for i, p in enumerate(paragraphs[300:600]))
    jsonl = "".join(json.dumps({"text": p, "id": i}) + "\n" for i, p in enumerate(paragraphs[600:900]))
    (folder / "corpus.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl.encode("utf-8")))
    (folder / "corpus-first-line.txt").write_text(paragraphs[600], encoding="utf-8")
    news = "".join(json.dumps({"text": p}) + "\n" for p in paragraphs[900:1100])
    (folder / "news.jsonl").write_text(news, encoding="utf-8")
    (folder / "my").mkdir()
    from mmtok.tokenize.tokenizer import load_tokenizer

    (folder / "my" / "tokenizer.json").write_text(load_tokenizer("gpt2").to_json(), encoding="utf-8")


_DRIVER = r"""
import contextlib, io, json, sys, traceback
namespace = {"__name__": "__main__"}
reply = sys.stdout
while True:
    header = sys.stdin.readline()
    if not header:
        break
    code = sys.stdin.read(int(header))
    out, ok = io.StringIO(), True
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            exec(compile(code, "<README block>", "exec"), namespace)
        except BaseException:
            ok = False
            traceback.print_exc()
    reply.write(json.dumps({"ok": ok, "output": out.getvalue()}) + "\n")
    reply.flush()
"""


class _Session:
    """One Python interpreter that runs the README's Python blocks in order, sharing their names."""

    def __init__(self, cwd: pathlib.Path, env: dict):
        self.proc = subprocess.Popen([sys.executable, "-c", _DRIVER], cwd=cwd, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, encoding="utf-8")

    def run(self, code: str) -> tuple[bool, str]:
        self.proc.stdin.write(f"{len(code)}\n{code}")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            return False, "the Python session died"
        result = json.loads(line)
        return result["ok"], result["output"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _expectation(block: dict):
    for key, expected in EXPECT.items():
        if key in block["code"]:
            return key, expected
    return None, None


def test_readme_blocks_are_found_and_marked():
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    runnable = [b for b in blocks if b["marker"] is None or b["marker"][0] == "needs"]
    assert len(runnable) >= 8
    skipped = [b for b in blocks if b["marker"] and b["marker"][0] == "skip"]
    assert all(b["marker"][1] for b in skipped), "a skip marker gives its reason: <!-- readme-test: skip (why) -->"
    # The two set-up commands are run by .ci/run and by hand, not here.
    assert any("pip install . && mmtok demo" in b["code"] for b in skipped)
    assert any("python -m pytest -q" in b["code"] for b in skipped)
    for b in blocks:
        if b["lang"] == "bash" and b["marker"] is None:
            usage = re.search(r"\[--?\w[^\]]*\]", b["code"])
            assert usage is None, f"README.md:{b['line']}: usage syntax {usage.group(0)} in a runnable block"
    # Every expectation still names a block of the README (a renamed example must move its check along).
    for key in EXPECT:
        assert any(key in b["code"] for b in runnable), f"EXPECT names no README block: {key!r}"


def test_every_readme_example_runs(tmp_path):
    work = tmp_path / "readme"
    work.mkdir()
    _write_inputs(work)
    env = dict(os.environ, MMTOK_CACHE_DIR=str(tmp_path / "cache"), PYTHONUNBUFFERED="1",
               PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    assert shutil.which("mmtok", path=env["PATH"]) == os.path.join(os.path.dirname(sys.executable), "mmtok")
    session = _Session(work, env)
    ran = 0
    try:
        for block in readme_blocks(README.read_text(encoding="utf-8")):
            kind, arg = block["marker"] or (None, None)
            if kind == "skip" or (kind == "needs" and importlib.util.find_spec(arg.split()[0]) is None):
                continue
            where = f"README.md:{block['line']} ({block['lang']} block)"
            if block["lang"] == "bash":
                proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block["code"]], cwd=work, env=env,
                                      capture_output=True, text=True, timeout=600)
                output = proc.stdout + proc.stderr
                assert proc.returncode == 0, f"{where} exited {proc.returncode}:\n{block['code']}\n{output}"
            else:
                ok, output = session.run(block["code"])
                assert ok, f"{where} failed:\n{block['code']}\n{output}"
            assert "Traceback" not in output, f"{where} printed a traceback:\n{output}"
            _, expected = _expectation(block)
            if isinstance(expected, list):
                for pattern in expected:
                    assert re.search(pattern, output), f"{where}: no match for {pattern!r} in:\n{output}"
            elif expected is not None:
                ok, output = session.run(expected)
                assert ok, f"{where}: its key output is wrong:\n{expected}\n{output}"
            ran += 1
    finally:
        session.close()
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    assert ran == len([b for b in blocks if not b["marker"] or b["marker"][0] == "needs"
                       and importlib.util.find_spec(b["marker"][1].split()[0]) is not None])
    print(f"ran {ran} README blocks")
