"""Bounded, pickle-free reading and deterministic writing of the zip and .npz files in an artifact.

Everything here assumes the bytes may be hostile: member names are never used as paths, every
declared size is capped before anything is read, and arrays come only from ``.npy`` members loaded
with ``allow_pickle=False`` and an allow-listed dtype.
"""

from __future__ import annotations

import io
import math
import re
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tierwise.router.errors import ArtifactError
from tierwise.router.schema import file_kind

GiB = 1 << 30
MiB = 1 << 20
MAX_MEMBER_BYTES = 2 * GiB  # one stored file (or one array) uncompressed
MAX_TOTAL_BYTES = 4 * GiB  # all members of one zip together, uncompressed
MAX_ZIP_MEMBERS = 10_000
MAX_FILE_BYTES = MAX_TOTAL_BYTES + 64 * MiB  # a .tierwise file: its members plus zip overhead
MAX_NPY_HEADER = 10_000  # numpy's own default cap on a .npy header
# A deflated member bigger than RATIO_MIN_BYTES that expands more than MAX_RATIO times is a zip
# bomb, not a router: save_artifact stores arrays uncompressed and only deflates the small manifest.
MAX_RATIO = 100
RATIO_MIN_BYTES = 1 * MiB

MANIFEST_NAME = "manifest.json"
ARRAYS_NAME = "arrays.npz"
SINGLE_FILE_SUFFIX = ".tierwise"

# Numeric, bool and fixed-width unicode: the dtypes numpy can load without unpickling anything.
ALLOWED_DTYPE_KINDS = frozenset("biufcU")
ARRAY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
NPY_MAGIC = b"\x93NUMPY"
# Fixed metadata so the same arrays always give the same bytes (and the same sha256).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def check_dtype(arr: np.ndarray, name: str, where: str) -> None:
    """Refuse object, structured, datetime and bytes arrays: only allow-listed kinds are stored."""
    if arr.dtype.kind not in ALLOWED_DTYPE_KINDS or arr.dtype.hasobject:
        raise ArtifactError(
            f"array `{name}` in {where} must have a numeric, bool or fixed-width unicode dtype, "
            f"got {arr.dtype} (kind {arr.dtype.kind!r}); artifacts never store pickled objects — "
            "convert it, e.g. np.asarray(x, dtype=float) or np.asarray(x, dtype=str)"
        )


def fmt_bytes(n: int) -> str:
    """A byte count for messages, in MiB or GiB."""
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / MiB:.1f} MiB"


def _unsafe_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return (
        name in ("", ".")
        or name.startswith(("/", "\\"))
        or "\\" in name
        or "\x00" in name
        or ":" in name
        or any(p in ("", ".", "..") for p in parts)
    )


def checked_members(zf: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    """Validate every entry of ``zf`` (names, sizes, compression); return them by name."""
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise ArtifactError(
            f"{where} has {len(infos)} members, more than the limit {MAX_ZIP_MEMBERS}; this is not "
            "an artifact written by tierwise"
        )
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = info.filename
        if _unsafe_name(name):
            raise ArtifactError(
                f"{where} contains the unsafe member name {name!r} (absolute path, `..` or a "
                "directory part); refusing it — this file was not written by tierwise"
            )
        if name in members:
            raise ArtifactError(
                f"{where} contains member {name!r} twice; refusing an ambiguous zip"
            )
        if info.flag_bits & 0x1:
            raise ArtifactError(
                f"{where}: member {name!r} is encrypted; artifacts are never encrypted"
            )
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArtifactError(
                f"{where}: member {name!r} uses compression method {info.compress_type}; only "
                "stored or deflated members are read — re-export the artifact with tierwise"
            )
        if info.file_size > MAX_MEMBER_BYTES:
            raise ArtifactError(
                f"{where}: member {name!r} declares {fmt_bytes(info.file_size)} uncompressed, more "
                f"than the limit {fmt_bytes(MAX_MEMBER_BYTES)}; refusing a possible zip bomb"
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_MIN_BYTES and ratio > MAX_RATIO:
            raise ArtifactError(
                f"{where}: member {name!r} expands {ratio:.0f}× ({info.compress_size} → "
                f"{info.file_size} bytes), more than the limit {MAX_RATIO}×; refusing a possible "
                "zip bomb"
            )
        total += info.file_size
        members[name] = info
    if total > MAX_TOTAL_BYTES:
        raise ArtifactError(
            f"{where} declares {fmt_bytes(total)} uncompressed in total, more than the limit "
            f"{fmt_bytes(MAX_TOTAL_BYTES)}; refusing a possible zip bomb"
        )
    return members


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """Read one member, never more than its (already capped) declared size."""
    try:
        with zf.open(info) as fh:
            data = fh.read(info.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as err:
        raise ArtifactError(
            f"{where}: member {info.filename!r} is corrupted ({err}); restore the file or "
            "re-export the artifact"
        ) from None
    if len(data) != info.file_size:
        raise ArtifactError(
            f"{where}: member {info.filename!r} holds {len(data)} bytes but declares "
            f"{info.file_size}; restore the file or re-export the artifact"
        )
    return data


def zip_info(name: str, compress: int) -> zipfile.ZipInfo:
    """A zip member header with fixed date and permissions, so equal content zips equally."""
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = compress
    info.create_system = 3  # unix, whatever the writing platform
    info.external_attr = 0o100644 << 16
    return info


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed .npz (what np.savez writes) with sorted members and fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in sorted(arrays):
            one = io.BytesIO()
            np.lib.format.write_array(one, arrays[name], allow_pickle=False)
            zf.writestr(zip_info(f"{name}.npy", zipfile.ZIP_STORED), one.getvalue())
    return buf.getvalue()


def load_npz(blob: bytes, where: str) -> dict[str, np.ndarray]:
    """Load every array of an .npz held in memory, refusing anything that would need pickle."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(blob))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ArtifactError(
            f"{where} is not a readable .npz archive (truncated or corrupted); restore the file "
            "or re-export the artifact"
        ) from None
    arrays: dict[str, np.ndarray] = {}
    with zf:
        for member, info in checked_members(zf, where).items():
            name = member[:-4] if member.endswith(".npy") else ""
            if not ARRAY_NAME.match(name):
                raise ArtifactError(
                    f"{where}: member {member!r} is not `<name>.npy` with a plain array name; "
                    "re-export the artifact with tierwise"
                )
            data = read_member(zf, info, where)
            if not data.startswith(NPY_MAGIC):
                raise ArtifactError(
                    f"{where}: member {member!r} is not a .npy array; re-export the artifact"
                )
            check_npy_header(data, name, where)
            try:
                arr = np.load(io.BytesIO(data), allow_pickle=False)
            except ValueError as err:
                if "allow_pickle" in str(err) or "pickled" in str(err):
                    raise ArtifactError(
                        f"array `{name}` in {where} is a pickled object array; refusing to load it "
                        "(unpickling can run arbitrary code) — store numeric, bool or unicode "
                        "arrays only"
                    ) from None
                raise ArtifactError(
                    f"array `{name}` in {where} is corrupted ({err}); re-export the artifact"
                ) from None
            except (OSError, EOFError) as err:
                raise ArtifactError(
                    f"array `{name}` in {where} is corrupted ({err}); re-export the artifact"
                ) from None
            if not isinstance(arr, np.ndarray):
                raise ArtifactError(f"{where}: member {member!r} is not a .npy array")
            check_dtype(arr, name, where)
            arrays[name] = arr
    return arrays


def _npy_header(data: bytes) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) from a .npy header, without reading the array."""
    fh = io.BytesIO(data)
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=MAX_NPY_HEADER)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=MAX_NPY_HEADER)
    else:
        raise ValueError(f".npy format version {version} is not one tierwise writes (1.0, 2.0)")
    return tuple(shape), np.dtype(dtype), fh.tell()


def check_npy_header(data: bytes, name: str, where: str) -> None:
    """Refuse a .npy member before numpy allocates anything for it.

    Its header declares shape and dtype; numpy would allocate ``prod(shape) * itemsize`` bytes
    up front (a 100-byte member declaring shape (10**12,) asks for 7 TiB). Checked first: the
    dtype is allow-listed and the declared size equals the bytes the member really holds.
    """
    try:
        shape, dtype, offset = _npy_header(data)
    except (ValueError, SyntaxError, TypeError, OverflowError) as err:
        raise ArtifactError(
            f"array `{name}` in {where} has an unreadable .npy header ({str(err)[:120]}); "
            "re-export the artifact"
        ) from None
    if dtype.hasobject:
        raise ArtifactError(
            f"array `{name}` in {where} is a pickled object array; refusing to load it "
            "(unpickling can run arbitrary code) — store numeric, bool or unicode arrays only"
        )
    if dtype.kind not in ALLOWED_DTYPE_KINDS:
        raise ArtifactError(
            f"array `{name}` in {where} must have a numeric, bool or fixed-width unicode dtype, "
            f"got {dtype} (kind {dtype.kind!r}); re-export the artifact"
        )
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise ArtifactError(f"array `{name}` in {where} declares an invalid shape {shape}")
    declared = math.prod(shape) * dtype.itemsize
    if declared != len(data) - offset:
        raise ArtifactError(
            f"array `{name}` in {where} declares shape {shape} of {dtype} "
            f"({fmt_bytes(declared)}) but holds {len(data) - offset:,} bytes of data; refusing a "
            "corrupted or hostile array — re-export the artifact"
        )


def read_file_bounded(path: Path, expected_size: int, where: str) -> bytes:
    """Read a regular file whose size the caller already checked; never read past the cap."""
    try:
        with path.open("rb") as fh:
            data = fh.read(min(expected_size, MAX_MEMBER_BYTES) + 1)
    except OSError as err:
        raise ArtifactError(f"cannot read {where}: {err.strerror}; check permissions") from None
    return data


def check_regular(path: Path, limit: int, label: str) -> int:
    """Size of ``path`` if it is a regular file of at most ``limit`` bytes (stat only).

    A FIFO would block the reader forever and a device such as /dev/zero never ends; neither is
    opened. A symlink to a regular file is fine.
    """
    try:
        st = path.stat()
    except OSError as err:
        raise ArtifactError(f"cannot read {label}: {err.strerror}; check the path") from None
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(
            f"{label} must be a regular file, got {file_kind(path)}; pass the directory or "
            f"{SINGLE_FILE_SUFFIX} file written by `tierwise train` or `tierwise export`"
        )
    if st.st_size > limit:
        raise ArtifactError(
            f"{label} is {fmt_bytes(st.st_size)}, more than the limit {fmt_bytes(limit)}; this "
            "is not a tierwise artifact"
        )
    return st.st_size


class ArtifactSource:
    """The members of a directory or of a zip artifact, read with size caps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zf: zipfile.ZipFile | None = None
        self.members: dict[str, zipfile.ZipInfo] = {}
        if path.is_dir():
            self.kind = "directory"
            return
        if not path.exists():
            raise ArtifactError(
                f"artifact {path} does not exist; pass the directory or {SINGLE_FILE_SUFFIX} file "
                "written by `tierwise train` or `tierwise export`"
            )
        self.kind = "single_file"
        check_regular(path, MAX_FILE_BYTES, f"artifact {path}")
        if path.name == MANIFEST_NAME:
            raise ArtifactError(
                f"{path} is the manifest inside an artifact; pass its directory {path.parent}"
            )
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError):
            raise ArtifactError(
                f"{path} is not a tierwise artifact (neither a directory nor a zip file); pass "
                f"the directory or {SINGLE_FILE_SUFFIX} file written by `tierwise train`"
            ) from None
        try:
            self.members = checked_members(self.zf, str(path))
        except ArtifactError:
            self.zf.close()
            raise

    def __enter__(self) -> ArtifactSource:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.zf is not None:
            self.zf.close()

    def where(self, name: str) -> str:
        return str(self.path / name) if self.zf is None else f"{self.path} (member {name})"

    def size(self, name: str) -> int | None:
        if self.zf is not None:
            info = self.members.get(name)
            return None if info is None else info.file_size
        p = self.path / name
        if not p.exists():
            return None
        return check_regular(p, MAX_MEMBER_BYTES, str(p))

    def read(self, name: str) -> bytes:
        if self.zf is not None:
            return read_member(self.zf, self.members[name], str(self.path))
        size = self.require(name, MAX_MEMBER_BYTES)
        return read_file_bounded(self.path / name, size, self.where(name))

    def require(self, name: str, limit: int) -> int:
        size = self.size(name)
        if size is None:
            raise ArtifactError(
                f"{self.where(name)} is missing; this is not a complete tierwise artifact — "
                "restore the file or re-export the artifact"
            )
        if size > limit:
            raise ArtifactError(
                f"{self.where(name)} is {fmt_bytes(size)}, more than the limit "
                f"{fmt_bytes(limit)}; this is not a tierwise artifact"
            )
        return size
