"""The `rag` command as a script sees it, each case run as a process: stdout carries exactly the
command's output, everything else goes to stderr, and every error a user can cause is one line
on stderr with its exit status (1 for an error, 2 for bad usage, 3 for the index), never a
traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import BULLETIN, REPO, free_port

QUESTION = {"id": "a", "question": "北京商业航天", "category": "exact", "answers": ["南箭北星"]}


def _env(home: Path, **settings: str) -> dict[str, str]:
    """The caller's environment without its RAG_* settings, the index under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    if "RAG_CACHE_DIR" in os.environ:  # the model cache is shared, as in conftest
        env["RAG_CACHE_DIR"] = os.environ["RAG_CACHE_DIR"]
    env["PYTHONPATH"] = str(REPO)
    env["RAG_ROOT"] = str(REPO)
    env["RAG_INDEX_DIR"] = str(home / "index")
    return env | settings


def _rag(env: dict[str, str], *argv: str, fake: bool = False) -> subprocess.CompletedProcess:
    module = "tests.fake_rag" if fake else "rag.cli"
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _one_line_error(
    run: subprocess.CompletedProcess, status: int, *words: str, notices: int = 0
) -> str:
    """The run failed with `status`, nothing on stdout, and one line on stderr holding `words`
    (after as many `notices` of what was being done)."""
    assert run.returncode == status, (run.returncode, run.stderr)
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 + notices, run.stderr
    assert lines[-1].startswith("rag: ")
    for word in words:
        assert word in lines[-1], (word, lines[-1])
    return lines[-1]


def test_version(tmp_path):
    run = _rag(_env(tmp_path), "--version")
    assert run.returncode == 0 and run.stderr == ""
    assert run.stdout == f"rag {version('bulletin-rag')}\n"


@pytest.mark.parametrize(
    "argv",
    [[], ["ask"], ["ask", "q", "-k", "0"], ["eval", "--mode", "nonsense"], ["frobnicate"]],
    ids=["no-command", "ask-no-question", "k-out-of-range", "bad-mode", "unknown-command"],
)
def test_bad_usage_exits_2(tmp_path, argv):
    run = _rag(_env(tmp_path), *argv)
    assert run.returncode == 2 and run.stdout == ""
    assert "usage: rag" in run.stderr and "Traceback" not in run.stderr


def test_eval_against_a_service_that_is_not_there(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    run = _rag(_env(tmp_path), "eval", "--url", url)
    _one_line_error(run, 1, f"cannot reach the service at {url}", "rag serve")


def test_eval_with_an_address_that_is_not_one(tmp_path):
    run = _rag(_env(tmp_path), "eval", "--url", "127.0.0.1:8000")
    _one_line_error(run, 1, "127.0.0.1:8000")


def test_eval_with_a_missing_questions_file(tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    run = _rag(_env(tmp_path), "eval", "--questions", str(missing))
    _one_line_error(run, 1, str(missing), "cannot read")


@pytest.mark.parametrize(
    "line",
    ['{"id": "a", "question": ', '["a", "b"]', '{"id": "a"}', '"just a string"'],
    ids=["truncated-json", "array", "missing-fields", "string"],
)
def test_eval_with_a_malformed_questions_line(tmp_path, line):
    path = tmp_path / "questions.jsonl"
    path.write_text(json.dumps(QUESTION, ensure_ascii=False) + "\n" + line + "\n", "utf-8")
    for argv in (["--questions", str(path)], ["--questions", str(path), "--url", "http://x"]):
        run = _rag(_env(tmp_path), "eval", *argv)
        _one_line_error(run, 1, str(path), "not a questions file")


def test_index_of_a_missing_corpus_folder(tmp_path):
    missing = tmp_path / "no-corpus"
    run = _rag(_env(tmp_path, RAG_CORPUS_DIR=str(missing)), "index")
    _one_line_error(run, 1, str(missing), "no such file or folder")


def test_ask_without_an_index_or_a_corpus(tmp_path):
    env = _env(tmp_path, RAG_CORPUS_DIR=str(tmp_path / "no-corpus"))
    # ask builds a missing index from the corpus, and says so; with no corpus, it cannot.
    run = _rag(env, "ask", "光伏", fake=True)
    _one_line_error(run, 1, "no such file or folder", notices=1)
    assert run.stderr.startswith("no index yet; building it from ")


@pytest.fixture
def fake_index(tmp_path) -> dict[str, str]:
    """An index of the page built by the `rag` process with the fake embedder; its env."""
    env = _env(tmp_path)
    run = _rag(env, "index", str(BULLETIN), fake=True)
    assert run.returncode == 0, run.stderr
    return env


@pytest.mark.parametrize("question", ["   ", "\udcff\udcfe北京"], ids=["blank", "undecodable"])
def test_a_question_that_cannot_be_asked(fake_index, question):
    run = subprocess.run(
        [sys.executable, "-m", "tests.fake_rag", "ask", question],
        env=fake_index,
        cwd=REPO,
        capture_output=True,
        timeout=600,
    )
    decoded = subprocess.CompletedProcess(
        run.args, run.returncode, run.stdout.decode(), run.stderr.decode()
    )
    _one_line_error(decoded, 1)


def test_index_and_ask_json_print_only_their_output(fake_index):
    run = _rag(fake_index, "index", str(BULLETIN), fake=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("indexed 1 files, 4 articles, ")
    assert run.stdout.splitlines()[1].startswith("coverage: ")
    run = _rag(fake_index, "ask", "北京商业航天", "--json", "-k", "2", fake=True)
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)  # the whole of stdout is the JSON
    assert [r["rank"] for r in body["results"]] == [1, 2]


@pytest.mark.parametrize(
    "damage",
    ["truncate-bulletins", "truncate-passages", "garble-vectors", "truncate-manifest"],
)
def test_ask_on_a_damaged_index_exits_3_in_one_line(fake_index, damage):
    current = Path(fake_index["RAG_INDEX_DIR"]) / "current"
    if damage == "truncate-bulletins":
        data = (current / "bulletins.json").read_bytes()
        (current / "bulletins.json").write_bytes(data[: len(data) // 2])
    elif damage == "truncate-passages":
        data = (current / "passages.jsonl").read_bytes()
        (current / "passages.jsonl").write_bytes(data[: len(data) // 2 + 7])
    elif damage == "garble-vectors":
        (current / "vectors.npy").write_bytes(b"\x93NUMPY" + b"\x00" * 100)
    else:
        data = (current / "manifest.json").read_bytes()
        (current / "manifest.json").write_bytes(data[: len(data) // 2])
    run = _rag(fake_index, "ask", "北京商业航天", "--json", fake=True)
    _one_line_error(run, 3, "rag index")


@pytest.mark.model
def test_stdout_is_only_the_output_on_a_fresh_cache(tmp_path):
    """On a new machine the model is built (and exported to ONNX) and the index built first;
    all that is said on stderr, and stdout still parses."""
    cache = tmp_path / "cache"
    env = _env(tmp_path, RAG_CACHE_DIR=str(cache))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(BULLETIN, corpus / BULLETIN.name)
    env["RAG_CORPUS_DIR"] = str(corpus)

    run = _rag(env, "model", "path")
    assert run.returncode == 0, run.stderr
    folder = Path(run.stdout.removesuffix("\n"))
    assert run.stdout == f"{folder}\n" and folder.is_dir() and folder.is_relative_to(cache)
    assert "building" in run.stderr

    run = _rag(env, "ask", "北京商业航天2028目标是什么", "--json", "-k", "1")
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)
    assert body["results"][0]["citation"]["doc_id"] == BULLETIN.stem
    assert "no index yet" in run.stderr

    run = _rag(env, "model", "path")  # built: the same path, and nothing else said
    assert (run.returncode, run.stdout) == (0, f"{folder}\n")


@pytest.mark.parametrize(
    ("variable", "value"), [("RAG_PORT", "not-a-port"), ("RAG_CANDIDATES", "0")]
)
def test_a_setting_it_cannot_take_is_one_line_naming_it(tmp_path, variable, value):
    run = _rag(_env(tmp_path, **{variable: value}), "ask", "北京商业航天")
    _one_line_error(run, 1, "a setting is wrong", variable)


def test_a_reader_that_goes_away_ends_it_quietly(tmp_path):
    """`rag --help | head -c 1`: the pipe closes while rag writes; no traceback for that."""
    env = _env(tmp_path)
    with subprocess.Popen(
        [sys.executable, "-c", "import sys; from rag.cli import main; sys.exit(main(sys.argv[1:]))",
         "model", "path"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as process:  # fmt: skip
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # the reader is gone before anything is written
        errors = process.stderr.read().decode()
        status = process.wait(timeout=600)
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
    assert status in (0, 141)  # 0 when all was written before the pipe closed
