"""Files on disk: uploads streamed under STORAGE_DIR with a size cap and a sha256. Stored names are built from
random ids and checksums only; a user-supplied file name never reaches the filesystem."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import Invalid, TooLarge

CHUNK = 1 << 20


@dataclass(frozen=True)
class Stored:
    relpath: str  # relative to the storage root
    sha256: str
    size: int


def root(storage_dir: str | os.PathLike) -> Path:
    path = Path(storage_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve(storage_dir: str | os.PathLike, relpath: str) -> Path:
    """The absolute path of a stored file; refuses anything that would leave the storage root."""
    base = root(storage_dir)
    path = (base / relpath).resolve()
    if base not in path.parents:
        raise Invalid("a stored path must stay inside the storage folder")
    return path


def save_stream(stream: BinaryIO, storage_dir: str | os.PathLike, folder: str, max_bytes: int) -> Stored:
    """Copy stream to storage_dir/folder/<random>.upload in 1 MiB chunks, hashing as it goes; stop and delete the
    partial file as soon as it passes max_bytes. folder is ours ("submissions", "labels/7"), never the user's."""
    target_dir = root(storage_dir) / folder
    target_dir.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_hex(16)}.upload"
    path = target_dir / name
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "xb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"the file is larger than the limit of {max_bytes:,} bytes")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise Invalid("the file is empty", field="file")
    return Stored(relpath=f"{folder}/{name}", sha256=digest.hexdigest(), size=size)


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
