"""Downloads into the data root: resumable, checksummed, atomic.

:func:`download` writes to ``<dest>.part``, resumes a partial ``.part`` with an HTTP
``Range`` request, verifies the sha256 and only then renames the file to ``dest``; a file
that fails its checksum is deleted. :func:`fetch` gets every file of a registry dataset
(see :mod:`tgraph.data.registry`) into ``<root>/<folder>`` and unpacks zip archives.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path

from tqdm.auto import tqdm

from tgraph.data.paths import data_root
from tgraph.data.readers._io import resolve
from tgraph.data.registry import Resource, get_spec
from tgraph.errors import DownloadError

logger = logging.getLogger(__name__)

CHUNK = 1 << 16


class _Interrupted(Exception):
    """The transfer stopped early; the ``.part`` file can be resumed."""


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    progress: bool = True,
    *,
    retries: int = 2,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    An existing ``dest`` with the right checksum (or any, when ``sha256`` is None) is kept.
    A transfer cut short is resumed from ``<dest>.part`` up to ``retries`` times; after that
    the ``.part`` file stays so that a later call resumes it. A wrong checksum deletes the
    ``.part`` file and raises :class:`DownloadError`.
    """
    dest = Path(dest)
    if dest.is_file():
        if sha256 is None or file_sha256(dest) == sha256:
            return dest
        raise DownloadError(
            f"{dest} exists but its sha256 is not {sha256}; delete it and download again"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, progress=progress, timeout=timeout)
            break
        except _Interrupted as err:
            if attempt == retries:
                raise DownloadError(
                    f"download of {url} stopped early ({err}); the partial file {part} is kept: "
                    "run the same command again to resume"
                ) from err
            logger.warning("download of %s stopped early (%s); resuming", url, err)
    if sha256 is not None:
        actual = file_sha256(part)
        if actual != sha256:
            part.unlink()
            raise DownloadError(
                f"checksum mismatch for {url}: sha256 {actual}, expected {sha256}; the file was "
                "deleted. Run again; if it persists, the server's file changed: get the file "
                f"by hand and check it before placing it at {dest}"
            )
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, *, progress: bool, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (or restart it when the server ignores Range)."""
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "tgraph"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:
            size = re.search(r"/(\d+)", err.headers.get("Content-Range", ""))
            if size and int(size.group(1)) == have:
                return  # the partial file is already complete
            part.unlink()
            raise _Interrupted(
                "the partial file does not fit the server's file; restarting"
            ) from err
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, TimeoutError) as err:
        raise DownloadError(
            f"cannot reach {url} ({getattr(err, 'reason', err)}); check the network, or download "
            f"the file by hand and place it at {part.with_suffix('')}"
        ) from err
    with response:
        if have and response.status != 206:
            have = 0  # the server sent the whole file
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with (
            open(part, "ab" if have else "wb") as handle,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
            ) as bar,
        ):
            while True:
                try:
                    chunk = response.read(CHUNK)
                except OSError as err:  # includes http.client.IncompleteRead, resets, timeouts
                    raise _Interrupted(str(err)) from err
                if not chunk:
                    break
                handle.write(chunk)
                bar.update(len(chunk))
    got = part.stat().st_size
    if total is not None and got < total:
        raise _Interrupted(f"received {got:,} of {total:,} bytes")


def extract(
    archive: str | os.PathLike, folder: str | os.PathLike, members: Mapping[str, str | None]
) -> list[Path]:
    """Extract the zip ``members`` (matched by file name, in any sub-folder) into ``folder``.

    ``members`` maps a file name to its sha256 (or None when unknown); each file is written
    to ``<name>.part``, checked, then renamed.
    """
    folder = Path(folder)
    out = []
    with zipfile.ZipFile(archive) as zipped:
        names = {
            Path(info.filename).name: info
            for info in zipped.infolist()
            if not info.is_dir() and "__MACOSX" not in info.filename
        }
        for name, sha256 in members.items():
            if name not in names:
                raise DownloadError(
                    f"{archive} has no file {name!r} (it has {sorted(names)}); the archive "
                    "changed: get the files by hand"
                )
            target = folder / name
            part = target.with_name(name + ".part")
            with zipped.open(names[name]) as source, open(part, "wb") as handle:
                shutil.copyfileobj(source, handle, CHUNK)
            if sha256 is not None and file_sha256(part) != sha256:
                part.unlink()
                raise DownloadError(f"{name} from {archive} does not match sha256 {sha256}")
            os.replace(part, target)
            out.append(target)
    return out


def fetch(name: str, root: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Download the files of registry dataset ``name`` into ``<root>/<folder>``.

    Files already there (plain or ``.gz``) are kept. Returns the dataset folder.
    """
    spec = get_spec(name)
    if not spec.resources:
        raise DownloadError(
            f"dataset {name!r} has no download URL; {spec.manual or 'see describe(name)'}"
        )
    folder = data_root(root) / spec.folder
    for resource in spec.resources:
        if _present(folder, resource):
            continue
        path = download(resource.url, folder / resource.filename, resource.sha256, progress)
        if resource.members:
            extract(path, folder, resource.members)
    return folder


def _present(folder: Path, resource: Resource) -> bool:
    wanted = list(resource.members) if resource.members else [resource.filename]
    try:
        for name in wanted:
            resolve(folder / name)
    except FileNotFoundError:
        return False
    return True
