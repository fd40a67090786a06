"""The `mmtok` command line: build, info, verify, show, demo, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mmtok.cli import main


@pytest.fixture()
def runner():
    return CliRunner()


@pytest.fixture()
def built(tmp_path, runner, docs_prose):
    text = tmp_path / "docs.txt"
    text.write_text(docs_prose, encoding="utf-8")
    out = tmp_path / "docs.mmtok"
    result = runner.invoke(main, ["build", str(text), "-o", str(out), "--shard-tokens", "20000", "--chunk-bytes", "30000", "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def test_build_info_verify_show(runner, built, docs_prose):
    result = runner.invoke(main, ["info", str(built), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["documents"] == 1 and info["shards"] > 3 and info["dtype"] == "uint16"
    assert info["document_length"]["max"] == info["tokens"]
    human = runner.invoke(main, ["info", str(built)])
    assert "doc length" in human.output and "gpt2" in human.output
    verify = runner.invoke(main, ["verify", str(built)])
    assert verify.exit_code == 0 and "OK" in verify.output
    show = runner.invoke(main, ["show", str(built), "--doc", "0"])
    assert show.exit_code == 0
    assert show.output == docs_prose + "\n"


def test_verify_names_the_damaged_shard(runner, built):
    victim = built / "shards" / "000002.tokens.npy"
    data = bytearray(victim.read_bytes())
    data[-7] ^= 0x01
    victim.write_bytes(bytes(data))
    result = runner.invoke(main, ["verify", str(built)])
    assert result.exit_code == 1
    assert "shard 000002" in result.output and "checksum" in result.output
    assert "Traceback" not in result.output


def test_verify_catches_a_consistent_but_wrong_store(runner, built):
    # A shard whose checksum was "fixed up" still fails: its document end no longer holds eos.
    import hashlib

    import numpy as np

    manifest = json.loads((built / "manifest.json").read_text())
    last = manifest["shards"][-1]
    path = built / "shards" / f"{last['name']}.tokens.npy"
    arr = np.load(path)
    arr[-1] = 11
    np.save(path, arr)
    last["tokens_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (built / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(main, ["verify", str(built)])
    assert result.exit_code == 1 and "eos" in result.output


@pytest.mark.parametrize(
    "content, name, args, message",
    [
        (b"ok\n\xff\n", "bad.txt", [], "bad.txt:2"),
        (b"a,b\n1,2\n3\n", "bad.csv", ["--column", "a"], "bad.csv"),
        (b"", "empty.jsonl", [], "empty"),
    ],
)
def test_user_errors_exit_1_without_traceback(runner, tmp_path, content, name, args, message):
    src = tmp_path / name
    src.write_bytes(content)
    result = runner.invoke(main, ["build", str(src), "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_missing_file_and_usage_errors(runner, tmp_path):
    missing = runner.invoke(main, ["build", str(tmp_path / "nope.txt"), "-o", str(tmp_path / "o")])
    assert missing.exit_code == 1 and "nope.txt" in missing.output
    usage = runner.invoke(main, ["build", "x.txt"])  # no -o
    assert usage.exit_code == 2
    not_store = runner.invoke(main, ["info", str(tmp_path)])
    assert not_store.exit_code == 1 and "not an mmtok store" in not_store.output
    show = runner.invoke(main, ["show", str(tmp_path), "--doc", "0"])
    assert show.exit_code == 1


def test_show_out_of_range(runner, built):
    result = runner.invoke(main, ["show", str(built), "--doc", "5"])
    assert result.exit_code == 1 and "no document 5" in result.output


def test_demo_runs_offline(runner, tmp_path):
    result = runner.invoke(main, ["demo", "-o", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert "verify: OK (1 shard checked)" in result.output
    import mmtok

    tokens = mmtok.open(tmp_path / "demo" / "python-docs.mmtok").num_tokens
    assert f"TokenDataset containing {(tokens - 64) // 64 + 1:,} subsets" in result.output
    assert "sample 0, text: 'The \"assert\" statement" in result.output


def test_help_loads_no_heavy_module():
    # Start-up time itself is measured by tools/bench_startup.py; here we guard its cause.
    done = subprocess.run([sys.executable, "-m", "mmtok", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "build" in done.stdout
    probe = ("import sys, mmtok.cli; "
             "print(sorted(m for m in ('transformers', 'tokenizers', 'tiktoken', 'zstandard', 'msgpack') if m in sys.modules))")
    check = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert check.stdout.strip() == "[]", check.stderr


def test_build_of_several_inputs_of_different_kinds(tmp_path, runner, docs_prose):
    text, table = tmp_path / "a.txt", tmp_path / "b.csv"
    text.write_text(docs_prose[:20000], encoding="utf-8")
    table.write_text("text\nfirst row\nsecond row\n", encoding="utf-8")
    result = runner.invoke(main, ["build", str(text), str(table), "-o", str(tmp_path / "s.mmtok")])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(main, ["info", str(tmp_path / "s.mmtok"), "--json"]).output)
    assert [entry["documents"] for entry in info["inputs"]] == [1, 2]
