"""Read-only and full disks: a build into a folder that cannot be written, or with a read-only
data dir, or running out of space, ends in one clear line (the CLI: ``error:`` and exit code 2;
the app's build: the job's message), never a traceback, and leaves no partial corpus that loads.

The tests run as root, whom file modes do not stop, so read-only folders are simulated where the
operating system refuses: ``os.open`` (the build's file lock) and ``os.mkdir`` (``pathlib``'s
mkdir) raise what a read-only file system raises; a full disk, where the write or the block
reservation fails.
"""

from __future__ import annotations

import errno
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import ROOT, SAMPLE_TEXT

from exbert_core import paths
from exbert_core.corpus.build import pipeline as build, jobs
from exbert_core.corpus.search import store
from exbert_core.errors import CorpusError, DiskError

TEXT = SAMPLE_TEXT[:1500]


def read_only(monkeypatch, folder: Path, code: int = errno.EACCES) -> None:
    """Make ``folder`` refuse new files and folders, as a read-only mount does for everyone."""
    real_open, real_mkdir = os.open, os.mkdir
    inside = str(folder)

    def refuse(path, *args, **kwargs):
        if str(path).startswith(inside):
            raise PermissionError(code, os.strerror(code), str(path))
        return None

    def guarded_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        refuse(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)


def run_build(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", [str(ROOT / "scripts/build_corpus.py"), *args])
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "scripts/build_corpus.py"), run_name="__main__")
    return done.value.code, capsys.readouterr().err


def assert_one_error_line(code: int, stderr: str, message: str) -> None:
    assert "Traceback" not in stderr and code == 2, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, stderr


@pytest.fixture()
def text_file(tmp_path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_a_build_into_a_read_only_out_folder_is_one_error_line(minilm, tmp_path, text_file, monkeypatch, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    read_only(monkeypatch, out)
    code, stderr = run_build(monkeypatch, capsys, "--text", str(text_file), "--name", "ro", "--out", str(out))
    assert_one_error_line(code, stderr, f"Cannot write corpus 'ro': {out}/ro.lock is not writable (Permission denied)")
    assert "--out" in stderr and not list(out.iterdir())


def test_a_build_with_a_read_only_data_dir_is_one_error_line(minilm, tmp_path, text_file, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(data))
    read_only(monkeypatch, data, errno.EROFS)
    code, stderr = run_build(monkeypatch, capsys, "--text", str(text_file), "--name", "ro")
    assert_one_error_line(code, stderr, f"Cannot write the data folder (EXBERT_DATA_DIR): {data}/corpora is not "
                                        "writable (Read-only file system)")


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def arrow_no_space(*args, **kwargs):  # how pyarrow reports it: an OSError without an errno
    raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")


@pytest.mark.parametrize("where", ["parquet", "codes"])
def test_a_full_disk_is_one_error_line_and_leaves_nothing_that_loads(minilm, nlp, tmp_path, monkeypatch, where):
    if where == "parquet":
        monkeypatch.setattr(pq.ParquetWriter, "write_table", arrow_no_space)
    else:  # the code files reserve their blocks first
        monkeypatch.setattr(os, "posix_fallocate", no_space)
    with pytest.raises(DiskError) as info:
        build.build(TEXT, "full", tmp_path, minilm, nlp=nlp, source={"file": "text.txt"})
    message = str(info.value)
    assert message.startswith(f"Cannot write corpus 'full' in {tmp_path}: the disk is full") and "\n" not in message
    assert "run the same build again" in message
    with pytest.raises(CorpusError, match="No corpus 'full'"):
        store.load(str(tmp_path / "full"))
    partial = tmp_path / "full.partial"
    assert not list(partial.glob("shard-*"))  # the shard cut off mid-way is gone (space freed)
    monkeypatch.undo()
    if where == "codes":  # with space again, the same build finishes
        assert store.load(str(build.build(TEXT, "full", tmp_path, minilm, nlp=nlp))).num_tokens > 0


def test_the_app_s_build_on_a_full_disk_fails_with_the_message_not_as_a_bug(minilm, tmp_path, monkeypatch):
    """The app's build runs in a child process, where no patch reaches: a real full disk, a
    256 KB tmpfs mounted as the data dir (the tests run as root), which the build's code files
    and Parquet tables overflow."""
    disk = tmp_path / "tiny"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], check=True)
    try:
        monkeypatch.setenv(paths.DATA_DIR_ENV, str(disk))
        jobs.start_build("app-full", minilm, text=SAMPLE_TEXT, file_name="notes.txt")
        status = jobs.wait("app-full", 300)
        assert status.state == jobs.FAILED
        assert status.error.startswith("Cannot write corpus 'app-full'") and "disk is full" in status.error
        assert "bug" not in status.error
        with pytest.raises(CorpusError, match="No corpus 'app-full'"):
            store.load(str(disk / "corpora" / "app-full"))
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
