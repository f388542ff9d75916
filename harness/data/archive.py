"""Zip archives: download to a temp file renamed when complete, then extract safely (every entry
checked first; top-level items renamed into place, so a killed extraction leaves no half item)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from harness.console import bars_allowed
from harness.data.rules import PROGRESS_BYTES
from harness.errors import HarnessError, InputError
from harness.fileio import ByteSink, write_atomic


def download_zip(
    url: str, dest_dir: str | Path, name: str, *, what: str, hint: str, show_progress: bool = True
) -> Path:
    """Download the zip at ``url`` and extract it into ``dest_dir``; return ``dest_dir/name``, its
    top-level folder.

    Nothing is done when ``dest_dir/name`` already exists. The zip is downloaded to a temp file and
    renamed when complete (``dest_dir/<name>.zip``), extracted with :func:`safe_extract_zip`, then
    deleted. A failed download is a HarnessError "could not download <what> from <url>: <why>. <hint>".
    """
    dest = Path(dest_dir)
    target = dest / name
    if target.is_dir():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    zip_path = dest / f"{name}.zip"
    if not zip_path.is_file():

        def download(out: ByteSink) -> None:
            with urllib.request.urlopen(url, timeout=60) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=f"{name}.zip",
                    disable=not (show_progress and bars_allowed()),
                ) as bar:
                    while chunk := resp.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))

        try:
            write_atomic(zip_path, download)
        except OSError as e:
            raise HarnessError(f"could not download {what} from {url}: {e}. {hint}") from e
    safe_extract_zip(zip_path, dest)
    if not target.is_dir():
        raise InputError(f"the zip has no top-level folder '{name}/'", file=str(zip_path))
    zip_path.unlink()  # the extracted folder is the cache
    return target


def safe_extract_zip(zip_path: str | Path, dest_dir: str | Path) -> list[Path]:
    """Extract ``zip_path`` into ``dest_dir``; return the top-level paths it created.

    Every entry is checked before anything is written: absolute paths, ``..`` components,
    drive letters and symlinks are refused (InputError naming the entry). Entries are written
    to a temp folder inside ``dest_dir`` and each top-level item is then renamed into place,
    so a killed extraction leaves no half-written item (only a ``.extract-*`` temp folder).
    Existing top-level items are an error, never overwritten.
    """
    zip_path, dest = Path(zip_path), Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(f"not a readable zip file: {e}", file=str(zip_path)) from e
    with zf:
        members = zf.infolist()
        tops: set[str] = set()
        for info in members:
            _check_zip_entry(info, root, zip_path)
            tops.add(PurePosixPath(info.filename.replace("\\", "/")).parts[0])
        clashes = sorted(t for t in tops if (dest / t).exists())
        if clashes:
            raise InputError(f"would overwrite existing {clashes} in {dest}", file=str(zip_path))
        size = sum(m.file_size for m in members)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            with tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                desc=f"extract {zip_path.name}",
                disable=size < PROGRESS_BYTES or not bars_allowed(),
            ) as bar:
                for member in members:
                    zf.extract(member, tmp)
                    bar.update(member.file_size)
            for top in sorted(tops):
                os.replace(tmp / top, dest / top)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return [dest / t for t in sorted(tops)]


def _check_zip_entry(info: zipfile.ZipInfo, root: Path, zip_path: Path) -> None:
    name = info.filename
    posix = name.replace("\\", "/")
    mode = info.external_attr >> 16
    reason = None
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        reason = "absolute path"
    elif ".." in PurePosixPath(posix).parts:
        reason = "'..' component"
    elif stat.S_ISLNK(mode):
        reason = "symbolic link"
    elif not (root / posix).resolve().is_relative_to(root):
        reason = "path outside the target folder"
    if reason:
        raise InputError(
            f"unsafe zip entry ({reason}); nothing was extracted", file=str(zip_path), field=name
        )
