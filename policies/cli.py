"""`python cli.py models`: prepare the embedded default model, show where it is."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="model to resolve (default: the embedded SmolLM2-135M-Instruct; a local HF dir, "
        ".gguf file or hub id)",
    )


def run(args: argparse.Namespace) -> int:
    from policies.models import resolve_model

    print(resolve_model(args.model))
    return 0
