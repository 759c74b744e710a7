"""Read one source (CSV, TSV, Parquet, JSONL, JSON, or a Hugging Face dataset) into a DataFrame.

Text files are read with every cell as a string and no NA guessing, so that a prompt reading
"None" stays a prompt and an id "007" keeps its zeros; numbers are parsed later with errors
that name the cell. A file whose content contradicts its extension is reported as such
instead of surfacing a parser's traceback.
"""

from __future__ import annotations

import gzip
import os
import socket
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlparse

from tierwise.eval.importers.config import SourceConfig
from tierwise.router.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

HF_BUILDERS = {"csv", "json", "parquet", "text", "arrow", "pandas"}


def detect_format(path: Path, declared: str | None) -> str:
    """The file format: as declared, else from the file name's extension."""
    if declared is not None:
        return declared
    name = path.name.lower()
    for suffix in (".gz", ".bz2", ".xz", ".zst", ".zip"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for ext, fmt in (
        (".csv", "csv"),
        (".tsv", "tsv"),
        (".parquet", "parquet"),
        (".pq", "parquet"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "json"),
    ):
        if name.endswith(ext):
            return fmt
    raise DataError(
        f"{path}: cannot tell the file format from its name; use a .csv, .csv.gz, .tsv, .parquet, "
        "or .jsonl file, or set `format:` in the source"
    )


def _head(path: Path, n: int = 512) -> bytes:
    with path.open("rb") as fh:
        raw = fh.read(n)
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                return gz.read(n)
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: a corrupt gzip file ({err}); re-create the file") from None
    return raw


def _looks_like(head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "Parquet"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive"
    if b"\x00" in head:
        return "binary data"
    text = head.lstrip().decode("utf-8", "replace")
    if text.startswith(("{", "[")):
        return "JSON"
    return "text (CSV?)"


def _sniff(path: Path, fmt: str) -> None:
    """Fail with a clear message when the bytes contradict the declared format."""
    if path.name.lower().endswith(".gz"):
        with path.open("rb") as fh:
            if fh.read(2) != b"\x1f\x8b":
                raise DataError(
                    f"{path}: named .gz but not gzip-compressed; "
                    "rename it without .gz or compress it"
                )
    head = _head(path)
    seen = _looks_like(head)
    ok = {
        "parquet": seen == "Parquet",
        "csv": seen == "text (CSV?)" or seen == "JSON",  # a CSV header may start with "{"
        "tsv": seen == "text (CSV?)" or seen == "JSON",
        "jsonl": seen == "JSON",
        "json": seen == "JSON",
    }[fmt]
    if not ok:
        raise DataError(
            f"{path}: the file is not {fmt.upper()} as its name or `format:` says; its content "
            f"looks like {seen} (starts with {head[:40]!r}); rename the file or set `format:` "
            "in the source"
        )


def _check_header(path: Path, header: pd.DataFrame) -> None:
    """pandas renames a repeated column to ``name.1``; report the repeat as the user wrote it."""
    if header.empty:
        return
    seen: dict[str, int] = {}
    for i, v in enumerate(header.iloc[0].tolist()):
        if v is None or v != v:  # v != v: NaN, an empty header cell (pandas names it "Unnamed")
            continue
        name = str(v)
        if name in seen:
            raise DataError(
                f"{path}: the header must name each column once, got {name!r} twice (columns "
                f"{seen[name] + 1} and {i + 1}); rename or remove one of them"
            )
        seen[name] = i


def read_file(path: Path, src: SourceConfig) -> pd.DataFrame:
    """A local log file (CSV, Parquet, JSONL) as a DataFrame; DataError naming the file."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist; check `path` in the config")
    fmt = detect_format(path, src.format)
    _sniff(path, fmt)
    try:
        if fmt in ("csv", "tsv"):
            sep = src.sep if src.sep is not None else ("\t" if fmt == "tsv" else ",")
            kwargs: dict[str, Any] = {"sep": sep, "dtype": str, "encoding": src.encoding}
            _check_header(path, pd.read_csv(path, header=None, nrows=1, **kwargs))
            # index_col=False + the warning as an error: a row with more fields than the header
            # is refused, not read as a shifted index or cut short.
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                try:
                    df = pd.read_csv(
                        path, keep_default_na=False, na_filter=False, index_col=False, **kwargs
                    )
                except pd.errors.ParserWarning:
                    raise DataError(
                        f"{path}: a row has more fields than the header; quote the fields that "
                        f"contain {kwargs['sep']!r} or fix the row"
                    ) from None
            if df.empty:
                raise DataError(f"{path}: the file has a header but no rows; export the log again")
            return df
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_json(path, lines=(fmt == "jsonl"), dtype=False, convert_dates=False)
    except DataError:
        raise
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not {src.encoding} text ({err.reason} at byte {err.start}); "
            "set `encoding:` in the source"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; export the log again") from None
    except (pd.errors.ParserError, ValueError, OSError) as err:
        msg = " ".join(str(err).split())[:300]
        raise DataError(
            f"{path}: cannot be read as {fmt.upper()} ({msg}); check the file"
        ) from None
    except Exception as err:  # pyarrow raises its own error family for broken Parquet
        msg = " ".join(str(err).split())[:300]
        raise DataError(
            f"{path}: cannot be read as {fmt.upper()} ({msg}); check the file"
        ) from None


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _hub_reachable(timeout: float = 3.0) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def read_hf(src: SourceConfig, base_dir: Path) -> pd.DataFrame:
    """Load through `datasets.load_dataset`; a hub id fails fast when the Hub is unreachable."""
    assert src.hf is not None
    name: str = src.hf
    local = (base_dir / name) if not Path(name).is_absolute() else Path(name)
    kwargs: dict[str, Any] = {}
    if src.data_files is not None:
        files = [src.data_files] if isinstance(src.data_files, str) else src.data_files
        kwargs["data_files"] = [str(base_dir / f) for f in files]
    if name == "csv":
        # As for our own CSV reader: no NA guessing, so a prompt "None" stays text.
        kwargs["keep_default_na"] = False
        kwargs["na_values"] = [""]
    is_hub = name not in HF_BUILDERS and not local.exists()
    if local.exists():
        name = str(local)
    offline = _truthy("HF_DATASETS_OFFLINE") or _truthy("HF_HUB_OFFLINE")
    if is_hub and not offline and not _hub_reachable():
        raise DataError(
            f"hf:{src.hf}: the Hugging Face Hub is unreachable; download the dataset and point "
            "`path` (or `hf` + `data_files`) at the local files, or set HF_DATASETS_OFFLINE=1 "
            "to use a cached copy"
        )
    import datasets

    try:
        ds = datasets.load_dataset(name, src.hf_config, split=src.split, **kwargs)
    except Exception as err:  # datasets raises many types (ConnectionError, FileNotFound, ...)
        msg = " ".join(str(err).split())[:300]
        hint = (
            "it is not in the local cache and the Hub is offline; download it and point `path` "
            "at the files"
            if is_hub and offline
            else "check `hf`, `hf_config`, `data_files`"
        )
        raise DataError(f"hf:{src.hf}: cannot load the dataset ({msg}); {hint}") from None
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        if len(splits) != 1:
            raise DataError(f"hf:{src.hf}: has splits {splits}; set `split:` to one of them")
        ds = ds[splits[0]]
    # Without `batched`, to_pandas returns one DataFrame.
    return cast("pd.DataFrame", ds.to_pandas())


def read_source(src: SourceConfig, base_dir: Path) -> pd.DataFrame:
    """One configured source (a file or a Hugging Face dataset) as a DataFrame."""
    if src.hf is not None:
        return read_hf(src, base_dir)
    assert src.path is not None
    return read_file(Path(source_path(src, base_dir)), src)


def source_path(src: SourceConfig, base_dir: Path) -> str:
    """The name used in messages: the resolved file path, or hf:<name>."""
    if src.path is None:
        return src.describe()
    p = Path(src.path)
    return os.path.normpath(p if p.is_absolute() else (base_dir / p))
