"""Reading the texts of a corpus from the formats people keep them in: a UTF-8 text file, a folder
of ``.txt`` files, JSON Lines, CSV and Parquet files (a text column), or a Hugging Face data set
(online only).

Bad rows (empty, binary, not UTF-8, not text) are counted and skipped, never fatal; the
:class:`InputReport` says how many of each were skipped so the user can check their data.
Nothing here limits the size of an input: the 20 MB upload limit belongs to the app.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from exbert_core.corpus.build.sample import F, TokenMeter, up_to
from exbert_core.corpus.build.sources import check_inside_its_folder, inside_folder
from exbert_core.errors import InvalidText

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".jsonl", ".csv", ".parquet")
DEFAULT_TEXT_COLUMN = "text"


@dataclass
class InputReport:
    """What was read: documents kept, and rows skipped by reason."""

    files: int = 0
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, rows: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + rows

    def counted_once(self, reader: Callable[[F, InputReport], Iterator[str]]) -> Callable[[F], Iterator[str]]:
        """``reader(file, report)`` as the ``read(file)`` of :func:`~exbert_core.corpus.build.sample.up_to`,
        whose counts land here once per file although a sample's top-up reads a file's start again."""
        seen: dict[F, InputReport] = {}

        def texts(file: F) -> Iterator[str]:
            before = seen.setdefault(file, InputReport())
            now = InputReport(files=1)
            for text in reader(file, now):
                self._add_beyond(before, now)
                yield text
            self._add_beyond(before, now)

        return texts

    def _add_beyond(self, before: InputReport, now: InputReport) -> None:
        """Adds what ``now`` counted beyond ``before``, and raises ``before`` to ``now``."""
        for name in ("files", "kept"):
            extra = getattr(now, name) - getattr(before, name)
            if extra > 0:
                setattr(self, name, getattr(self, name) + extra)
                setattr(before, name, getattr(now, name))
        for reason, rows in now.skipped.items():
            extra = rows - before.skipped.get(reason, 0)
            if extra > 0:
                self.skip(reason, extra)
                before.skipped[reason] = rows

    def summary(self) -> str:
        skipped = ", ".join(f"{n:,} {reason}" for reason, n in sorted(self.skipped.items()))
        return (f"{self.kept:,} texts from {self.files:,} file(s)"
                + (f"; skipped {skipped}" if skipped else "; nothing skipped"))


def _keep(value: object, report: InputReport) -> str | None:
    """``value`` as a clean text, or None (counted) for what cannot be one."""
    if value is None:
        report.skip("empty")
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            report.skip("not UTF-8")
            return None
    if not isinstance(value, str):
        report.skip("not text")
        return None
    try:
        value.encode("utf-8")  # lone surrogates: a CSV row's bad bytes, a JSON "\ud800"
    except UnicodeEncodeError:
        report.skip("not UTF-8")
        return None
    if "\x00" in value:
        report.skip("binary")
        return None
    text = value.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        report.skip("empty")
        return None
    report.kept += 1
    return text


def _jsonl(path: Path, column: str, report: InputReport) -> Iterator[str]:
    with path.open("rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                report.skip("unreadable line")
                continue
            if not isinstance(row, dict) or column not in row:
                report.skip(f"no '{column}' field")
                continue
            text = _keep(row[column], report)
            if text is not None:
                yield text


def _csv(path: Path, column: str, report: InputReport) -> Iterator[str]:
    csv.field_size_limit(1 << 30)
    with path.open("rb") as raw:
        # Bad bytes become lone surrogates, so that only their row is skipped (in _keep).
        stream = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
        try:
            reader = csv.DictReader(stream)
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise InvalidText(f"{path.name}: no column '{column}' (columns: {', '.join(reader.fieldnames or [])}). "
                                  "Name the text column with --text-column.")
            for row in reader:
                text = _keep(row.get(column), report)
                if text is not None:
                    yield text
        except csv.Error as err:
            report.skip("unreadable line")
            log.warning("%s: %s", path.name, err)


def _parquet(path: Path, column: str, report: InputReport) -> Iterator[str]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise InvalidText(f"{path.name} is not a readable Parquet file ({err}).") from err
    if column not in parquet.schema_arrow.names:
        raise InvalidText(f"{path.name}: no column '{column}' (columns: {', '.join(parquet.schema_arrow.names)}). "
                          "Name the text column with --text-column.")
    for group in range(parquet.num_row_groups):
        try:  # a damaged row group costs its rows, not the file
            values = parquet.read_row_group(group, columns=[column]).column(0).to_pylist()
        except (pa.ArrowException, OSError) as err:
            report.skip("in unreadable row groups", parquet.metadata.row_group(group).num_rows)
            log.warning("%s: row group %d cannot be read (%s)", path.name, group, err)
            continue
        for value in values:
            text = _keep(value, report)
            if text is not None:
                yield text


def _text_file(path: Path, report: InputReport) -> Iterator[str]:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InvalidText(f"{path.name} cannot be read ({err}).") from err
    text = _keep(data, report)
    if text is not None:
        yield text


def read(path: Path, *, text_column: str = DEFAULT_TEXT_COLUMN, max_tokens_total: int | None = None,
         meter: TokenMeter | None = None, report: InputReport | None = None) -> Iterator[str]:
    """The texts of ``path``: a ``.txt`` file, a ``.jsonl``/``.csv``/``.parquet`` file (column
    ``text_column``), or a folder of such files (sorted by name, recursively). Stops after
    ``max_tokens_total`` tokens when given (counted by ``meter``, the model's tokenizer), spread
    over the files (:mod:`exbert_core.corpus.build.sample`).

    Never reads a file outside the input's folder (``path`` itself, or the folder of a file given
    alone): a link that leads out of it (``notes.txt -> /etc/passwd``) is skipped and counted as
    "outside the input folder", so that no host file reaches a corpus that visitors see."""
    report = report if report is not None else InputReport()
    path = Path(path).expanduser()
    if path.is_dir():
        root = path.resolve()
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".txt", *TABLE_SUFFIXES) and p.is_file())
        files = [p for p in found if inside_folder(p, root)]
        if len(files) < len(found):
            report.skip("outside the input folder", len(found) - len(files))
        if not files:
            raise InvalidText(f"{path} holds no .txt, .jsonl, .csv or .parquet file"
                              + (" inside it (links that lead out of it are not followed)." if found else "."))
    elif path.is_file():
        check_inside_its_folder(path)
        files = [path]
    else:
        raise InvalidText(f"No file or folder at {path}.")

    def texts(file: Path, counts: InputReport) -> Iterator[str]:
        suffix = file.suffix.lower()
        return (_jsonl(file, text_column, counts) if suffix == ".jsonl" else
                _csv(file, text_column, counts) if suffix == ".csv" else
                _parquet(file, text_column, counts) if suffix == ".parquet" else
                _text_file(file, counts))

    yield from up_to(files, report.counted_once(texts), max_tokens_total, meter)


def hugging_face(name: str, config: str | None, split: str, *, text_column: str = DEFAULT_TEXT_COLUMN,
                 max_tokens_total: int | None = None, meter: TokenMeter | None = None,
                 report: InputReport | None = None) -> Iterator[str]:
    """The texts of a Hugging Face data set split, read from the hub's Parquet conversion
    (``refs/convert/parquet``) with pyarrow: needs internet, no extra package."""
    from huggingface_hub import HfFileSystem

    from exbert_core.model.loading import hub_reachable

    if not hub_reachable():
        raise InvalidText(f"The data set '{name}' is on the Hugging Face hub, which cannot be reached from here. "
                          "Download its files and build from them with --input.")
    fs = HfFileSystem()
    pattern = f"datasets/{name}@~parquet/{config or 'default'}/{split}/*.parquet"
    try:
        files = sorted(fs.glob(pattern))
    except Exception as err:  # the hub client's errors: unknown data set, gated, network
        raise InvalidText(f"The data set '{name}' cannot be listed on the hub ({type(err).__name__}: {err}).") from err
    if not files:
        raise InvalidText(f"No Parquet files for data set '{name}', config '{config}', split '{split}' ({pattern}).")
    report = report if report is not None else InputReport()

    def texts(file: str, counts: InputReport) -> Iterator[str]:
        try:
            with fs.open(file, "rb") as f:
                table = pq.read_table(f, columns=[text_column])
        except (pa.ArrowException, OSError, KeyError) as err:
            raise InvalidText(f"{file}: no readable column '{text_column}' ({err}). "
                              "Name the text column with --text-column.") from err
        kept = (_keep(value, counts) for value in table.column(0).to_pylist())
        yield from (text for text in kept if text is not None)

    yield from up_to(files, report.counted_once(texts), max_tokens_total, meter)
