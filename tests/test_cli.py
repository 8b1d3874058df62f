"""The `rag` command, run in-process with the fake embedder."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from rag.cli import main
from rag.index.build import passages_of
from rag.ingest.load import load_bulletins
from rag.settings import Settings
from tests.conftest import BULLETIN, REPO, FakeEmbedder


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Environment for `main`: repo root, index under tmp_path, fake embedder; returns index dir."""
    monkeypatch.setenv("RAG_ROOT", str(REPO))
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    for name in (
        "RAG_CORPUS_DIR",
        "RAG_CHUNK_TOKENS",
        "RAG_MODEL",
        "RAG_EMBED_CONTEXT",
        "RAG_SEARCH_MODE",
    ):
        monkeypatch.delenv(name, raising=False)
    made: list[FakeEmbedder] = []

    def fake_load_embedder(settings, *, show_progress=False):
        made.append(FakeEmbedder())
        return made[-1]

    monkeypatch.setattr("rag.model.embed.load_embedder", fake_load_embedder)
    return tmp_path / "index"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _snapshot(index_dir: Path) -> tuple[str, bytes, list[str]]:
    return (
        os.readlink(index_dir / "current"),
        (index_dir / "current" / "manifest.json").read_bytes(),
        sorted(p.name for p in (index_dir / "builds").iterdir()),
    )


def _passage_count() -> int:
    settings = Settings()
    return len(passages_of(load_bulletins([BULLETIN], REPO), settings)[1])


def test_index_prints_a_summary(cli, capsys):
    code, out, err = _run(capsys, "index")
    assert code == 0, err
    n = _passage_count()
    match = re.search(
        r"indexed (\d+) files, (\d+) articles, (\d+) passages \((\d+) embedded, (\d+) reused;",
        out,
    )
    assert match, out
    assert [int(g) for g in match.groups()] == [1, 4, n, n, 0]
    assert (cli / "current" / "manifest.json").is_file()
    assert str(cli / "builds") in out

    code, out, _ = _run(capsys, "index", str(BULLETIN))
    assert code == 0
    assert f"{n} passages (0 embedded, {n} reused; 0 sentences embedded)" in out
    # Where every character went: 5951 non-blank ones, the rest of them section headings and
    # pull quotes, none unaccounted (and so no warning).
    coverage = re.search(r"coverage: (\d+) characters, (\d+) in passages .* (\d+) unaccounted", out)
    assert coverage and coverage.group(1) == "5951" and coverage.group(3) == "0", out
    assert "warning" not in err


def test_inspect_json_accounts_for_every_character(cli, capsys):
    code, out, err = _run(capsys, "inspect", "--json")
    assert code == 0, err
    (page,) = json.loads(out)["files"]
    assert page["unaccounted"] == [] and page["coverage"]["unaccounted"] == 0
    text = BULLETIN.read_text(encoding="utf-8")
    labels = {(lab["label"], text[lab["start"] : lab["end"]]) for lab in page["labels"]}
    assert ("byline", "本报记者 吴丽琳") in labels and (
        "kicker",
        "2024年地方重点工作解读",
    ) in labels
    pulls = [lab for lab in page["labels"] if lab["label"] == "pull_quote"]
    assert len(pulls) == 3 and all("repeats" in lab for lab in pulls)
    first = page["articles"][0]
    assert first["headline"] == "重庆：以数字化推动工业经济提质增效"
    for article in page["articles"]:
        for p in article["paragraphs"]:
            assert "".join(text[s["start"] : s["end"]] for s in p["spans"]) == p["text"]


def test_ask_json_shape(cli, capsys):
    assert _run(capsys, "index")[0] == 0
    code, out, err = _run(capsys, "ask", "北京商业航天发展目标", "--json", "-k", "3")
    assert code == 0, err
    body = json.loads(out)
    assert set(body) == {"query", "took_ms", "answerable", "message", "results"}
    assert body["query"] == "北京商业航天发展目标"
    assert [r["rank"] for r in body["results"]] == [1, 2, 3]
    text = BULLETIN.read_text(encoding="utf-8")
    for result in body["results"]:
        assert set(result) == {"rank", "score", "text", "highlights", "citation", "duplicates"}
        citation = result["citation"]
        assert set(citation) == {"doc_id", "source", "headline", "section", "paragraph", "spans"}
        assert citation["source"] == "corpus/000_a1e9ce7368794dc6.txt"
        spans = citation["spans"]
        assert "".join(text[s["start"] : s["end"]] for s in spans) == result["text"]
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_ask_builds_a_missing_index(cli, capsys):
    code, out, err = _run(capsys, "ask", "光伏产业")
    assert code == 0, err
    assert "no index yet" in err
    assert (cli / "current" / "manifest.json").is_file()
    assert re.search(r"^1\. \[\d\.\d{3}\] ", out, re.MULTILINE)
    assert "corpus/000_a1e9ce7368794dc6.txt @ " in out


def test_ask_empty_question_is_a_user_error(cli, capsys):
    assert _run(capsys, "index")[0] == 0
    code, out, err = _run(capsys, "ask", "   ")
    assert code == 1
    assert out == "" and "empty" in err


def test_inspect_lists_joins_and_pull_quotes(cli, capsys):
    code, out, err = _run(capsys, "inspect")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("corpus/000_a1e9ce7368794dc6.txt")
    assert sum(line.strip().startswith("join (article") for line in lines) == 9
    assert sum(line.strip().startswith("drop_pull_quote (article 1)") for line in lines) == 3
    articles = [line.strip() for line in lines if line.strip().startswith("article ")]
    assert len(articles) == 4
    assert "重庆：以数字化推动工业经济提质增效" in articles[0] and "本报记者 吴丽琳" in articles[0]
    assert "| 北京 | 2024-01-24" in articles[1]
    assert not (cli / "current").exists()  # inspect writes nothing


BAD_INPUTS = {
    "empty file": lambda d: _write(d / "empty.txt", b""),
    "binary file": lambda d: _write(d / "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
    "empty folder": lambda d: _mkdir(d / "nothing-here"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_is_refused_and_index_untouched(cli, capsys, tmp_path, kind):
    assert _run(capsys, "index")[0] == 0
    before = _snapshot(cli)
    bad = BAD_INPUTS[kind](tmp_path)
    code, out, err = _run(capsys, "index", str(bad))
    assert code == 1
    assert str(bad) in err and err.startswith("rag: ")
    assert "Traceback" not in err and out == ""
    assert _snapshot(cli) == before


def test_bad_file_among_good_ones_is_refused(cli, capsys, tmp_path):
    assert _run(capsys, "index")[0] == 0
    before = _snapshot(cli)
    bad = _write(tmp_path / "empty.txt", b"   \n")
    code, _, err = _run(capsys, "index", str(BULLETIN), str(bad))
    assert code == 1 and str(bad) in err
    assert _snapshot(cli) == before


def test_index_without_anything_to_index_is_a_user_error(cli, capsys, tmp_path):
    headline_only = _write(tmp_path / "h.txt", "（新华社记者兰红光摄）\n".encode())
    code, _, err = _run(capsys, "index", str(headline_only))
    assert code == 1
    assert err.startswith("rag: ") and "no text" in err
    assert not (cli / "current").exists()


def _questions(tmp_path: Path) -> Path:
    path = tmp_path / "questions.jsonl"
    rows = [
        {"id": "a", "question": "北京商业航天", "category": "exact", "answers": ["南箭北星"]},
        {"id": "b", "question": "上海集成电路目标", "category": "unanswerable", "answers": []},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    return path


def test_eval_reports_the_answerable_flag_and_its_curve(cli, capsys, tmp_path):
    code, out, err = _run(capsys, "eval", "--questions", str(_questions(tmp_path)), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["questions"] == 2 and report["answerable"] == 1
    # 上海: no article is about it and no passage mentions it.
    assert report["answerability"]["unanswerable_flagged"] == 1
    assert {row["script"] for row in report["curve"]} == {"zh"}


def test_eval_compares_every_mode(cli, capsys, tmp_path):
    code, out, err = _run(capsys, "eval", "--questions", str(_questions(tmp_path)), "--modes")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {"dense", "lexical", "hybrid"}
    assert rows["hybrid"].endswith("(default)")
    for line in rows.values():
        hit1, recall5 = (float(v) for v in line.split()[1:3])
        assert 0.0 <= hit1 <= 1.0 and 0.0 <= recall5 <= 1.0


def test_eval_modes_refuses_options_it_would_ignore(cli, capsys, tmp_path):
    questions = str(_questions(tmp_path))
    for extra in (["--url", "http://127.0.0.1:9"], ["--mode", "dense"], ["--json"]):
        code, _, err = _run(capsys, "eval", "--questions", questions, "--modes", *extra)
        assert code != 0 and "--modes" in err, (extra, err)


def test_ask_undecodable_bytes_is_a_user_error(cli, capsys):
    # A shell passes bytes that are not UTF-8 as lone surrogates (surrogateescape).
    code, _, err = _run(capsys, "ask", "\udcff\udcfe北京")
    assert code == 1 and "not valid Unicode" in err


def test_every_pipeline_failure_has_an_exit_status():
    from rag.cli import EXIT_STATUS
    from rag.pipeline import PipelineError

    assert set(PipelineError.__subclasses__()) <= set(EXIT_STATUS)


def test_ask_on_a_stale_index_says_to_rebuild(cli, capsys, monkeypatch):
    assert _run(capsys, "index")[0] == 0
    monkeypatch.setenv("RAG_CHUNK_TOKENS", "128")
    code, out, err = _run(capsys, "ask", "光伏产业")
    assert code == 3 and out == ""
    assert err.startswith("rag: the index at ") and "rebuild it with `rag index`" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_ask_on_a_damaged_index_says_to_rebuild(cli, capsys):
    assert _run(capsys, "index")[0] == 0
    (cli / "current" / "vectors.npy").write_bytes(b"\x93NUMPY")
    code, out, err = _run(capsys, "ask", "光伏产业")
    assert code == 3 and out == ""
    assert "cannot be read" in err and "rag index" in err and "Traceback" not in err
