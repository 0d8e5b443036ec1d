"""`python cli.py models`: list the embedded models, prepare one, show where it is.

    python cli.py models --list                       # embedded names, installed or not
    python cli.py models --model qwen2.5-coder-0.5b   # join + verify + convert once; print the path
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="model to resolve (default: the embedded SmolLM2-135M-Instruct; an embedded name "
        "such as qwen2.5-coder-0.5b, a local HF dir, a .gguf file or a hub id)",
    )
    p.add_argument("--list", action="store_true", help="list the embedded models and whether they are installed")


def run(args: argparse.Namespace) -> int:
    from policies.models import EMBEDDED, resolve_model

    if args.list:
        from importlib import metadata

        for m in EMBEDDED.values():
            missing = []
            for d in m.dists:
                try:
                    metadata.distribution(d)
                except metadata.PackageNotFoundError:
                    missing.append(d)
            state = "installed" if not missing else f"not installed ({m.pip_command()})"
            print(f"{m.name:22s} {m.description}\n{'':22s} {state}")
        return 0
    print(resolve_model(args.model))
    return 0
