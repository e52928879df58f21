"""Background jobs (one per key for the whole process), the operator's corpus policy, and the
corpus build a link records (the app's builds in their own process: test_child_build.py)."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

from exbert_core.app import state as app_state
from exbert_core.corpus.build import estimate, jobs, policy
from exbert_core.corpus.search import catalog
from exbert_core.errors import BuildError
from exbert_core.progress import Step


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty data dir of the test's own (corpora only: the model comes from its package)."""
    monkeypatch.setenv("EXBERT_DATA_DIR", str(tmp_path))
    for key in (policy.ALLOW_REPLACE_ENV, policy.QUOTA_ENV):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def test_a_job_runs_once_per_key_and_reruns_attach_to_it():
    release = threading.Event()
    calls = []

    def work(progress):
        calls.append(1)
        progress(Step("wait", "Waiting", 1, 4, "steps"))
        release.wait(30)
        return "made"

    first, started = jobs.start("test-once", "A test job", work)
    second, started_again = jobs.start("test-once", "A test job", work)
    assert started and not started_again
    assert second.started == first.started and second.running
    release.set()
    done = jobs.wait("test-once", 30)
    assert done.state == jobs.DONE and done.result == "made" and len(calls) == 1
    assert [stage for stage, _ in done.stages] == ["wait"]
    # A finished job is kept; start() runs a new one (a retry), never status().
    assert jobs.status("test-once").started == first.started
    third, started = jobs.start("test-once", "A test job", lambda progress: "again")
    assert started and jobs.wait("test-once", 30).result == "again"


def test_a_failed_job_keeps_the_users_message_and_a_bug_says_so():
    def user_error(progress):
        raise BuildError("The text has no sentences to index.")

    def bug(progress):
        raise ZeroDivisionError("division by zero")

    jobs.start("test-user-error", "Building corpus 'x'", user_error)
    jobs.start("test-bug", "Building corpus 'y'", bug)
    failed = jobs.wait("test-user-error", 30)
    assert failed.state == jobs.FAILED and failed.error == "The text has no sentences to index."
    crashed = jobs.wait("test-bug", 30)
    assert crashed.state == jobs.FAILED
    assert "ZeroDivisionError: division by zero" in crashed.error and "server log" in crashed.error


def test_eta_comes_from_the_speed_measured_so_far():
    release = threading.Event()

    def work(progress):
        progress(Step("embed", "Embedding", 0, 100, "tokens"))
        time.sleep(0.8)
        progress(Step("embed", "Embedding", 40, 100, "tokens"))
        release.wait(30)

    jobs.start("test-eta", "A test job", work)
    deadline = time.monotonic() + 20
    while (status := jobs.status("test-eta")).step is None or status.step.done != 40:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    release.set()
    # 40 tokens in ~0.8 s: the other 60 take ~1.2 s more (generous bounds for a busy machine).
    assert status.eta_s is not None and 0.8 <= status.eta_s <= 20
    jobs.wait("test-eta", 30)


def test_upload_names_are_the_texts_own(data_dir):
    name = policy.upload_name("alice", "Some text.", "minilm")
    assert name.startswith("alice-") and name != "alice" and len(name) == len("alice-") + policy.DIGEST_CHARS
    assert policy.upload_name("alice", "Some text.", "minilm") == name  # the same text: the same corpus
    assert policy.upload_name("alice", "Other text.", "minilm") != name
    assert policy.upload_name("alice", "Some text.", "smollm2") != name
    assert policy.upload_name("../../etc/passwd", "x", "minilm").startswith("etc-passwd-")
    assert policy.upload_name("", "x", "minilm").startswith("upload-")
    assert len(policy.upload_name("x" * 300, "x", "minilm")) <= 64


def test_existing_corpora_are_read_only_unless_the_operator_allows_replacing(data_dir, monkeypatch, minilm):
    info = minilm.info
    with pytest.raises(BuildError, match="keeps existing corpora as they are.*Pick another name.$"):
        policy.check_build("alice", exists=True, replace=True, characters=100, info=info)
    monkeypatch.setenv(policy.ALLOW_REPLACE_ENV, "1")
    with pytest.raises(BuildError, match="Tick"):
        policy.check_build("alice", exists=True, replace=False, characters=100, info=info)
    assert policy.check_build("alice", exists=True, replace=True, characters=100, info=info) > 0
    with pytest.raises(BuildError, match="not a corpus name"):
        policy.check_build("no spaces", exists=False, replace=False, characters=100, info=info)


def test_the_disk_quota_counts_what_is_there_and_what_is_being_built(data_dir, monkeypatch, minilm):
    corpora = data_dir / "corpora"
    corpora.mkdir()
    (corpora / "old").mkdir()
    (corpora / "old" / "blob").write_bytes(b"\0" * 3 * 2**20)
    assert policy.used_bytes() == 3 * 2**20
    monkeypatch.setenv(policy.QUOTA_ENV, "5")
    # A 10,000-character text with MiniLM: about 2,600 tokens x ~3.4 kB = ~8.5 MB: over 5 MB.
    estimate = policy.estimated_bytes(10_000, minilm.info)
    assert 5 * 2**20 < estimate < 20 * 2**20
    with pytest.raises(BuildError, match="already use 3 MB of the 5 MB this server allows. Use a shorter text.$"):
        policy.check_build("new", exists=False, replace=False, characters=10_000, info=minilm.info)
    assert policy.check_build("new", exists=False, replace=False, characters=1_000, info=minilm.info) > 0
    with pytest.raises(BuildError, match="already use 5 MB"):  # a running build's reservation counts
        policy.check_build("new", exists=False, replace=False, characters=1_000, info=minilm.info,
                           reserved=2 * 2**20)
    monkeypatch.setenv(policy.QUOTA_ENV, "lots")
    with pytest.raises(BuildError, match="EXBERT_CORPUS_QUOTA_MB='lots' is not a size in MB"):
        policy.quota_bytes()


def test_a_build_form_offers_a_free_name():
    from exbert_core.corpus.format.names import free_name

    assert free_name("moby-dick", {"alice"}) == "moby-dick"
    assert free_name("alice", {"alice", "alice-2"}) == "alice-3"
    long = "x" * 64
    assert free_name(long, {long}) == "x" * 62 + "-2"


def test_disk_per_token_is_measured_on_this_servers_corpora(sample_corpus_dir, minilm):
    manifest = json.loads((sample_corpus_dir / "manifest.json").read_text())
    measured = sum(p.stat().st_size for p in sample_corpus_dir.rglob("*") if p.is_file()) / manifest["tokens"]
    fake = catalog.CorpusEntry("sample", sample_corpus_dir, "minilm", manifest["sentences"], manifest["tokens"],
                               int(measured * manifest["tokens"]), "", "", 0, manifest)
    assert policy.bytes_per_token(minilm.info, [fake]) == pytest.approx(measured, rel=1e-6)
    from_size = policy.bytes_per_token(minilm.info, [])
    assert 0.5 < from_size / measured < 2  # the formula used before any corpus of the model exists


def test_build_time_is_told_from_this_servers_own_builds(sample_corpus_dir, minilm, data_dir):
    manifest = {**json.loads((sample_corpus_dir / "manifest.json").read_text()), "build_seconds": 20.0}
    built = catalog.CorpusEntry("a", sample_corpus_dir, "minilm", 10, 40_000, 1, "", "", 0, manifest)
    other = catalog.CorpusEntry("b", sample_corpus_dir, "smollm2", 10, 1_000, 1, "", "", 0, manifest)
    assert policy.tokens_per_s(minilm.info, [built, other]) == pytest.approx(2_000)
    assert policy.tokens_per_s(minilm.info, [other]) is None
    told = estimate.estimate(minilm.info, 400_000, data_dir, tokens_per_s=2_000)
    assert told.seconds == pytest.approx(told.tokens / 2_000) and "earlier builds on this server" in told.summary()
    assert "2-core CPU" in estimate.estimate(minilm.info, 400_000, data_dir).summary()


def test_a_corpus_build_id_changes_with_its_files_not_with_its_build_time(sample_corpus_dir, tmp_path, monkeypatch):
    corpora = tmp_path / "corpora"
    shutil.copytree(sample_corpus_dir, corpora / "copy")
    monkeypatch.setenv("EXBERT_DATA_DIR", str(tmp_path))
    first = catalog.entry_of("copy").build_id
    assert len(first) == 8 and catalog.entry_of("copy").build_id == first
    path = corpora / "copy" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["built"], manifest["build_seconds"] = "2030-01-01T00:00:00+00:00", 1.0
    path.write_text(json.dumps(manifest))
    assert catalog.entry_of("copy").build_id == first  # the same files: the same build
    shard = dict(manifest["shards"][0])
    manifest["shards"][0]["manifest_sha256"] = "1" * 64  # a shard's text rebuilt, the same quantiser
    path.write_text(json.dumps(manifest))
    assert catalog.entry_of("copy").build_id != first
    manifest["shards"][0] = shard
    name = next(iter(manifest["files"]))
    manifest["files"][name]["sha256"] = "0" * 64
    path.write_text(json.dumps(manifest))
    assert catalog.entry_of("copy").build_id != first


def test_a_link_records_the_corpus_build_and_says_when_it_changed():
    state, warnings = app_state.from_params({"corpus_build": "D099F45E"})
    assert state.corpus_build == "d099f45e" and not warnings
    _, warnings = app_state.from_params({"corpus_build": "![x](http://h/p.png)"})
    assert warnings and "not a build checksum" in warnings[0]
    fitted, warnings = app_state.fit_corpus_build(state, "0badf00d", from_link=True)
    assert fitted.corpus_build == "0badf00d"
    assert "Corpus 'alice' was rebuilt since this link was made" in warnings[0] and "d099f45e" in warnings[0]
    assert app_state.fit_corpus_build(state, "d099f45e", from_link=True) == (state, [])
    # Changing corpus in the app (not a link) records the new build silently; unknown builds wait.
    assert app_state.fit_corpus_build(state, "0badf00d", from_link=False)[1] == []
    assert app_state.fit_corpus_build(state, None, from_link=True) == (state, [])
    assert app_state.to_params(fitted)["corpus_build"] == "0badf00d"
    assert "corpus_build" not in app_state.to_params(app_state.AppState())
