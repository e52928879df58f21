"""Corpus builds of the app in a child process of their own: real builds of the tests' sample
text with the real MiniLM and spaCy, progress relayed to the job, the child's peak measured and
recorded, its errors and bugs told in one line, a stopped build said to be stopped and no
process left behind."""

from __future__ import annotations

import psutil
import pytest
from conftest import SAMPLE_TEXT

from exbert_core.corpus.build import build_memory, child_build, jobs, policy
from exbert_core.corpus.search import store
from exbert_core.errors import BuildError

MB = 1_000_000


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EXBERT_DATA_DIR", str(tmp_path))
    for key in (policy.ALLOW_REPLACE_ENV, policy.QUOTA_ENV, "EXBERT_MEMORY_LIMIT"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def _build_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "exbert_core.corpus.build.child_build" in " ".join(p.cmdline())]


def test_a_build_runs_in_its_own_process_reports_its_stages_and_records_its_peak(data_dir, minilm):
    status, started = jobs.start_build("child-sample", minilm, text=SAMPLE_TEXT, file_name="sample.txt")
    assert started
    done = jobs.wait("child-sample", 600)
    assert done.state == jobs.DONE, done.error
    stages = [stage for stage, _ in done.stages]
    # the child's steps reach the job as they did in a thread: it starts, loads, builds (one stage for
    # the sample, the parse and the model), writes the manifest
    assert stages == ["start", "load", "build", "write", "done"]
    corpus = store.load(str(done.result))
    assert corpus.manifest.tokens > 100 and corpus.manifest.source == {"file": "sample.txt"}
    # The peak is the child's: torch, transformers and spaCy alone are ~0.4 GB; the build stays bounded.
    peak = build_memory.measured_peak("minilm")
    assert peak is not None and 250 * MB < peak < 1_200 * MB
    told = policy.plan(minilm.info, len(SAMPLE_TEXT))
    assert told.memory_bytes == peak and told.memory_measured
    assert not _build_children()


def test_the_childs_errors_reach_the_reader_in_one_line(data_dir, minilm, tmp_path):
    jobs.start_build("child-empty", minilm, text="   \n\n", file_name="blank.txt")
    failed = jobs.wait("child-empty", 600)
    assert failed.state == jobs.FAILED and failed.error == "The text has no sentences to index."
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(child_build.BuildCrashed, match=r"^(FileExistsError|NotADirectoryError): "):
        child_build.run("crash", "minilm", SAMPLE_TEXT, blocker)
    assert build_memory.measured_peak("minilm") is None  # only finished builds are recorded
    assert not _build_children()


def test_a_stopped_build_says_so_and_leaves_no_process(data_dir, minilm):
    seen = []

    def stop_when_loading(step):
        seen.append(step.stage)
        if step.stage == "load":
            stop.set()

    import threading

    stop = threading.Event()
    with pytest.raises(BuildError, match="was stopped.*building it again goes on from there"):
        child_build.run("stopped", "minilm", SAMPLE_TEXT, data_dir / "corpora", progress=stop_when_loading,
                        stop=stop)
    assert seen[0] == "load" and "done" not in seen
    assert not _build_children()
    assert not jobs.cancel("no-such-job")
