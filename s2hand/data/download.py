"""Getting the real datasets' files in place: the manifest, checksums, downloads, safe unpacking.

The manifest (`sources.yaml` beside this file) names every file and where the user must put it:
`<raw_dir>/<dataset>/<file>`, e.g. data/freihand/FreiHAND_pub_v2.zip.

    from s2hand.data.download import load_manifest, fetch, safe_extract
    src = load_manifest()["freihand"].files[0]
    archive = fetch(src, Path("data"))      # verify it, or download it when that is allowed
    safe_extract(archive, Path("outputs/extracted/freihand/FreiHAND_pub_v2"))

`fetch` downloads only when the manifest has a URL and the dataset is not licence-gated;
otherwise, or when the download fails, it raises `FetchError` saying where to put the file.
`safe_extract` refuses archive members that would land outside the destination (absolute
paths, '..') and links or device files, extracts into a temporary folder, writes a marker file
last and renames the folder into place: a destination is either complete or absent.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

import yaml

from s2hand.io import atomic_dir, sha256sum

log = logging.getLogger(__name__)

MANIFEST = Path(__file__).with_name("sources.yaml")
MARKER = ".extracted.json"  # written last inside a finished extraction
CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A dataset file is missing, cannot be downloaded, or fails its checksum."""


class ChecksumError(FetchError):
    """A file's SHA-256 differs from the one pinned in the manifest."""


class ExtractError(RuntimeError):
    """An archive is unsafe (member outside the destination, link, device) or unreadable."""


@dataclasses.dataclass(frozen=True)
class Source:
    """One file of a dataset, as listed in the manifest."""

    dataset: str
    file: str
    url: str | None
    sha256: str | None
    required: bool
    extract_to: str | None  # None: a plain file, used as it is
    gated: bool
    homepage: str
    licence: str

    def path(self, raw_dir: str | Path) -> Path:
        """Where the user must put this file."""
        return Path(raw_dir) / self.dataset / self.file

    def unpacked(self, raw_dir: str | Path) -> Path | None:
        """Where a by-hand unpacked copy of this archive is accepted instead of the archive."""
        return None if self.extract_to is None else Path(raw_dir) / self.dataset / self.extract_to


@dataclasses.dataclass(frozen=True)
class DatasetSources:
    name: str
    title: str
    homepage: str
    gated: bool
    licence: str
    need: str  # "all": every required file; "any": at least one file
    files: tuple[Source, ...]


def load_manifest(path: str | Path = MANIFEST) -> dict[str, DatasetSources]:
    raw = yaml.safe_load(Path(path).read_text())
    out = {}
    for name, d in raw.items():
        for key in ("title", "homepage", "gated", "licence", "need", "files"):
            if key not in d:
                raise ValueError(f"{path}: {name}: missing key '{key}'")
        if d["need"] not in ("all", "any"):
            raise ValueError(f"{path}: {name}.need: 'all' or 'any', got {d['need']!r}")
        files = []
        for f in d["files"]:
            sha = f.get("sha256")
            if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha.lower())):
                raise ValueError(f"{path}: {name}.{f['file']}.sha256: not a SHA-256 hex digest: {sha!r}")
            files.append(Source(
                dataset=name, file=f["file"], url=f.get("url"), sha256=sha.lower() if sha else None,
                required=bool(f.get("required", True)), extract_to=f.get("extract_to"),
                gated=bool(d["gated"]), homepage=d["homepage"], licence=" ".join(str(d["licence"]).split()),
            ))
        out[name] = DatasetSources(name, d["title"], d["homepage"], bool(d["gated"]), d["licence"], d["need"], tuple(files))
    return out


def where_to_put(source: Source, raw_dir: str | Path) -> str:
    """The sentence every missing-file error ends with."""
    msg = f"Put the file at {source.path(raw_dir)}"
    if source.extract_to is not None:
        msg += f" (or its unpacked contents in {source.unpacked(raw_dir)}/)"
    how = "download it after accepting the licence" if source.gated else "download it"
    return f"{msg}; {how} from {source.homepage}. Licence: {source.licence}"


def verify(path: Path, source: Source) -> str:
    """Check `path` against the manifest's SHA-256; returns the computed digest."""
    digest = sha256sum(path)
    if source.sha256 is None:
        log.warning(
            "%s: no SHA-256 is pinned for %s/%s in %s, so verification is SKIPPED. "
            "Computed sha256 = %s (pin it in the manifest to check future copies).",
            path, source.dataset, source.file, MANIFEST.name, digest,
        )
    elif digest != source.sha256:
        raise ChecksumError(
            f"{path}: SHA-256 mismatch (expected {source.sha256}, got {digest}): the file is corrupt, "
            f"truncated or a different release. Delete it and get it again from {source.homepage}"
        )
    else:
        log.info("%s: SHA-256 verified", path)
    return digest


def fetch(source: Source, raw_dir: str | Path, timeout: float = 15.0) -> Path:
    """Return the verified path of `source` under `raw_dir`, downloading it when allowed.

    Raises FetchError (missing, gated, no URL, download failed) or ChecksumError.
    `timeout` is the socket timeout in seconds of each network operation.
    """
    path = source.path(raw_dir)
    if path.is_file():
        verify(path, source)
        return path
    if source.gated:
        raise FetchError(f"{path} is missing and {source.dataset} is licence-gated, so it is not downloaded "
                         f"automatically. {where_to_put(source, raw_dir)}")
    if not source.url:
        raise FetchError(f"{path} is missing and no public download URL is known for it. {where_to_put(source, raw_dir)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.part-", dir=path.parent)
    try:
        log.info("downloading %s -> %s", source.url, path)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source.url, timeout=timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                from tqdm import tqdm

                with tqdm(total=total, unit="B", unit_scale=True, desc=source.file, disable=None) as bar:
                    while chunk := resp.read(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
        except (OSError, ValueError) as err:  # URLError, HTTPError, timeouts are OSErrors
            raise FetchError(f"downloading {source.url} failed ({err}). Download it yourself: "
                             f"{where_to_put(source, raw_dir)}") from err
        verify(Path(tmp), source)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ---------------------------------------------------------------------------------- extraction


def _member_target(name: str, dest: Path) -> PurePosixPath | None:
    """The safe relative path of an archive member, None for the archive root itself."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise ExtractError(f"refusing absolute path in archive: {name!r}")
    rel = PurePosixPath(norm)
    if ".." in rel.parts:
        raise ExtractError(f"refusing path with '..' in archive: {name!r}")
    parts = [p for p in rel.parts if p not in ("", ".")]
    if not parts:
        return None
    rel = PurePosixPath(*parts)
    target = os.path.normpath(os.path.join(dest, *parts))
    if os.path.commonpath([target, str(dest)]) != str(dest):
        raise ExtractError(f"refusing member that escapes the destination: {name!r}")
    return rel


def _zip_members(zf: zipfile.ZipFile, dest: Path) -> list[tuple[PurePosixPath, bool, zipfile.ZipInfo]]:
    out = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            what = "symlink" if kind == stat.S_IFLNK else "special file"
            raise ExtractError(f"refusing {what} in archive: {info.filename!r}")
        rel = _member_target(info.filename, dest)
        if rel is not None:
            out.append((rel, info.is_dir() or kind == stat.S_IFDIR, info))
    return out


def _tar_members(tf: tarfile.TarFile, dest: Path) -> list[tuple[PurePosixPath, bool, tarfile.TarInfo]]:
    out = []
    for m in tf.getmembers():
        if m.issym() or m.islnk():
            raise ExtractError(f"refusing {'symlink' if m.issym() else 'hardlink'} in archive: {m.name!r}")
        if not (m.isfile() or m.isdir()):
            raise ExtractError(f"refusing device or special file in archive: {m.name!r}")
        rel = _member_target(m.name, dest)
        if rel is not None:
            out.append((rel, m.isdir(), m))
    return out


DEFAULT_MAX_BYTES = 200 * 10**9  # params.yaml data.extract_max_gb
DEFAULT_MAX_RATIO = 100.0  # params.yaml data.extract_max_ratio


def check_size(archive: Path, declared: list[int], max_bytes: float, max_ratio: float) -> None:
    """Refuse an archive bomb before anything is written: the members' declared sizes (which the
    zip and tar readers then hold each member to) must total at most `max_bytes` and at most
    `max_ratio` times the archive's own size."""
    total, packed = sum(declared), max(archive.stat().st_size, 1)
    if total > max_bytes:
        raise ExtractError(f"refusing {archive}: it unpacks to {total / 1e9:.3g} GB, over the limit of "
                           f"{max_bytes / 1e9:.3g} GB (params.yaml data.extract_max_gb)")
    if total / packed > max_ratio:
        raise ExtractError(f"refusing {archive}: it unpacks to {total / packed:.0f} x its size, over the limit of "
                           f"{max_ratio:g} x (params.yaml data.extract_max_ratio): an archive bomb?")


def safe_extract(archive: str | Path, dest: str | Path, max_bytes: float = DEFAULT_MAX_BYTES,
                 max_ratio: float = DEFAULT_MAX_RATIO) -> Path:
    """Extract a .zip or .tar(.gz/.bz2/.xz) archive into `dest`; returns `dest`. An archive that
    would unpack to more than `max_bytes`, or `max_ratio` times its size, is refused (check_size).

    Idempotent: skips when `dest` holds the marker of a finished extraction. Every member is
    checked before anything is written; the archive is unpacked into a temporary sibling of
    `dest` that is renamed into place only after the marker is written, so a failure leaves
    nothing behind.
    """
    archive, dest = Path(archive), Path(os.path.abspath(dest))
    if (dest / MARKER).is_file():
        log.info("%s: already extracted (marker %s present), skipping", dest, MARKER)
        return dest
    if dest.exists():
        raise ExtractError(f"{dest} exists but holds no {MARKER}: an unfinished or foreign folder. Remove it and run again.")
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: no such archive")
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = _zip_members(zf, dest)
            check_size(archive, [m.file_size for _, d, m in members if not d], max_bytes, max_ratio)
            _copy_members(archive, dest, members, zf.open, "unzip")
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            members = _tar_members(tf, dest)
            check_size(archive, [m.size for _, d, m in members if not d], max_bytes, max_ratio)
            _copy_members(archive, dest, members, tf.extractfile, "untar")
    else:
        raise ExtractError(f"{archive}: neither a zip nor a tar archive")
    log.info("extracted %s -> %s", archive, dest)
    return dest


def _copy_members(archive: Path, dest: Path, members: list, open_member, verb: str) -> None:
    """Write the checked `members` [(relative path, is_dir, member)] into a temporary folder,
    renamed to `dest` only when every file and the marker are written."""
    from tqdm import tqdm

    with atomic_dir(dest) as tmp:
        for rel, is_dir, info in tqdm(members, desc=f"{verb} {archive.name}", disable=None):
            target = tmp.joinpath(*rel.parts)
            if is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = open_member(info)
            if src is None:
                raise ExtractError(f"{archive}: cannot read member {getattr(info, 'name', info)!r}")
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
        _write_marker(tmp, archive, len(members))


def _write_marker(folder: Path, archive: Path, members: int) -> None:
    (folder / MARKER).write_text(json.dumps({"archive": archive.name, "members": members}) + "\n")


def find_root(start: str | Path, must_contain: tuple[str, ...], max_depth: int = 2) -> Path:
    """The first folder at or below `start` (breadth first, `max_depth` levels) that holds every
    name in `must_contain`: archives differ in whether they wrap their content in a folder."""
    start = Path(start)
    level = [start]
    for _ in range(max_depth + 1):
        nxt = []
        for d in level:
            if all((d / n).exists() for n in must_contain):
                return d
            nxt += sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        level = nxt
    raise FileNotFoundError(f"{start}: no folder within {max_depth} levels holds {', '.join(must_contain)}")
