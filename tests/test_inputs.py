"""Reading the inputs of a build (exbert_core.corpus.build.inputs): no file outside the input's folder is
ever read, and ``--max-tokens-total`` holds across files and spreads a sample over them, counted
with the real MiniLM tokenizer. File reading and tokenizing only: no model pass, no spaCy (fast)."""

from __future__ import annotations

import json
import os
import re
import runpy
import sys
from unittest import mock

import pytest
from conftest import ROOT

from exbert_core.corpus.build import pipeline as build, inputs, sample, sources
from exbert_core.corpus.format import manifest as corpus_manifest
from exbert_core.model import loading
from exbert_core.errors import InvalidText

SECRET = "root:x:0:0:root:/root:/bin/bash"


@pytest.fixture()
def host_file(tmp_path):
    """A file outside every input folder, as /etc/passwd is (a copy, so the test is the same everywhere)."""
    secret = tmp_path / "host" / "passwd"
    secret.parent.mkdir()
    secret.write_text(SECRET + "\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    return secret


@pytest.fixture(scope="module")
def meter() -> sample.TokenMeter:
    from transformers import AutoTokenizer

    return sample.TokenMeter(AutoTokenizer.from_pretrained(str(loading.minilm_dir())))


def tokens(texts: list[str], meter: sample.TokenMeter) -> int:
    return sum(meter.count(t) for t in texts)


def test_a_folder_never_brings_in_a_file_from_outside_it(tmp_path, host_file):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("The river ran to the sea.")
    (folder / "sub" / "b.txt").write_text("A cat sat on the warm mat.")
    os.symlink(host_file, folder / "sub" / "passwd_link.txt")  # the probe's case
    os.symlink(host_file, folder / "rows.jsonl")  # any input kind
    (host_file.parent / "secret.txt").write_text(SECRET)
    os.symlink(host_file.parent, folder / "linked_dir", target_is_directory=True)
    # Python 3.11's rglob does not enter linked folders; where it does, their files are outside.
    linked = sum(1 for p in folder.rglob("*") if p.name == "secret.txt")
    os.symlink(folder / "a.txt", folder / "sub" / "again.txt")  # a link inside the folder is read
    report = inputs.InputReport()
    texts = list(inputs.read(folder, report=report))
    assert not [t for t in texts if "root:" in t]
    assert texts == ["The river ran to the sea.", "The river ran to the sea.", "A cat sat on the warm mat."]
    assert report.skipped == {"outside the input folder": 2 + linked}
    assert f"skipped {2 + linked} outside the input folder" in report.summary()  # the manifest's "read" line


def test_a_file_given_alone_that_links_out_of_its_folder_is_refused(tmp_path, host_file):
    (tmp_path / "mine").mkdir()
    link = tmp_path / "mine" / "notes.txt"
    os.symlink(host_file, link)
    with pytest.raises(InvalidText, match="link to a file outside its folder"):
        list(inputs.read(link))
    with pytest.raises(InvalidText, match="link to a file outside its folder"):  # --text
        sources.read_user_text(link)
    inner = tmp_path / "latest.txt"  # a link within the folder is the user's own file
    os.symlink(tmp_path / "real.txt", inner)
    (tmp_path / "real.txt").write_text("Alice ran.")
    assert sources.read_user_text(inner) == "Alice ran."
    only_links = tmp_path / "only-links"
    only_links.mkdir()
    os.symlink(host_file, only_links / "x.txt")
    with pytest.raises(InvalidText, match="links that lead out of it are not followed"):
        list(inputs.read(only_links))


def test_the_command_line_builds_nothing_from_a_host_file(tmp_path, host_file, monkeypatch):
    """build_corpus.py --input: the link is skipped before anything is built, and the manifest's
    "read" line says so (checked on what the script passes to the build)."""
    folder = tmp_path / "in" / "sub"
    folder.mkdir(parents=True)
    os.symlink(host_file, folder / "passwd_link.txt")
    (folder / "ok.txt").write_text("The queen shouted at the cat. The cat smiled.")
    seen = what_the_script_builds(monkeypatch, "--input", str(tmp_path / "in"), "--name", "links",
                                  "--out", str(tmp_path / "out"))
    assert seen["text"] == ["The queen shouted at the cat. The cat smiled."]
    assert "skipped 1 outside the input folder" in seen["source"]["read"]


def test_a_text_file_build_records_the_path_that_rebuilds_it(tmp_path, monkeypatch):
    """--text data/my notes.txt: the manifest shows visitors the file's name, and the resume and
    rebuild hints quote the path the build read (the bare name sent users to a file that is not
    there when they run the command from elsewhere)."""
    notes = tmp_path / "data" / "my notes.txt"
    notes.parent.mkdir()
    notes.write_text("The queen shouted at the cat.")
    seen = what_the_script_builds(monkeypatch, "--text", str(notes), "--name", "notes")
    assert seen["source"]["file"] == "my notes.txt"
    command = corpus_manifest.build_command("notes", seen["source"], "minilm")
    assert f"--text '{notes}' --name notes" in command
    assert corpus_manifest.build_command("up", {"file": "upload.txt"}).startswith(
        "python scripts/build_corpus.py --text upload.txt")  # an app upload: its name is all there is


def what_the_script_builds(monkeypatch, *args: str) -> dict:
    """What ``build_corpus.py ARGS`` hands to the build (its text and source), the model and the
    build itself replaced."""
    seen = {}

    def fake_build(text, name, out, loaded, *, source, **kwargs):
        seen.update(text=text, source=source)
        raise SystemExit(0)

    monkeypatch.setattr(sys, "argv", ["build_corpus.py", *args])
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    monkeypatch.setattr(build, "build", fake_build)
    monkeypatch.setattr(loading, "load", mock.MagicMock())
    monkeypatch.setattr(loading, "move_to_device", mock.MagicMock(return_value="cpu"))
    with pytest.raises(SystemExit):
        runpy.run_path(str(ROOT / "scripts" / "build_corpus.py"), run_name="__main__")
    return seen


def paragraphs(n: int, words: int = 12) -> str:
    return "\n\n".join(f"Paragraph {i} has some words in it. " + "The cat sat on the mat. " * (words // 6)
                       for i in range(n))


def test_the_cap_holds_across_files_and_a_sample_spreads_over_them(tmp_path, meter):
    """The probe's case: several files of about 6,000 tokens each and a cap of 2,000 gave the whole
    first file, and a character estimate then gave 1,838. Now: the cap in the model's tokens, less at
    most one sentence, taken from every file."""
    folder = tmp_path / "books"
    folder.mkdir()
    for i in range(4):
        (folder / f"book{i}.txt").write_text(f"Book{i} begins. " + paragraphs(400))
    assert meter.count((folder / "book0.txt").read_text()) > 6000
    texts = list(inputs.read(folder, max_tokens_total=2000, meter=meter))
    assert 2000 - ONE_SENTENCE <= tokens(texts, meter) <= 2000, tokens(texts, meter)
    assert [re.match(r"Book\d", t).group() for t in texts] == ["Book0", "Book1", "Book2", "Book3"]
    assert all(t.endswith(".") for t in texts)  # cut at a sentence or a paragraph


ONE_SENTENCE = 12  # "Paragraph 7 has some words in it." and the tokens a sample may stop short by


def test_a_sample_of_many_small_files_is_drawn_from_all_of_the_folder(tmp_path, meter):
    folder = tmp_path / "chapters"
    folder.mkdir()
    for i in range(100):
        (folder / f"ch{i:03d}.txt").write_text(f"Chapter {i}. " + paragraphs(20))
    report = inputs.InputReport()
    texts = list(inputs.read(folder, max_tokens_total=1000, meter=meter, report=report))
    assert 1000 - ONE_SENTENCE <= tokens(texts, meter) <= 1000
    chapters = [int(re.match(r"Chapter (\d+)", t).group(1)) for t in texts]
    assert report.files == len(chapters) == 1000 // sample.MIN_SHARE_TOKENS
    assert chapters[0] == 0 and chapters[-1] >= 75  # spread, not the first five chapters


def test_a_folder_of_notes_shorter_than_a_share_still_fills_the_cap(tmp_path, meter):
    """100 notes of about 90 tokens (9,000 in all) and a cap of 2,000: the ten files a share of 200
    picks held 900 tokens, and the sample stopped there; now it goes on in the files not yet read."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(100):
        (folder / f"note{i:03d}.txt").write_text(f"Note {i}. " + paragraphs(1, words=66))
    assert 80 <= meter.count((folder / "note000.txt").read_text()) < sample.MIN_SHARE_TOKENS
    report = inputs.InputReport()
    texts = list(inputs.read(folder, max_tokens_total=2000, meter=meter, report=report))
    assert 2000 - ONE_SENTENCE <= tokens(texts, meter) <= 2000, tokens(texts, meter)
    notes = sorted(int(re.match(r"Note (\d+)", t).group(1)) for t in texts)
    assert report.files == len(notes) == len(set(notes)) > 20  # each note read once
    assert notes[0] == 0 and notes[-1] >= 75  # spread over the folder


def test_a_short_last_file_leaves_its_share_to_the_files_before_it(tmp_path, meter):
    """Four long chapters and a short last file, capped at 2,000: the last file's share was lost (the
    sample stopped at 1,931); now the files before it give more, each from where its share ended.
    Sentences of about 35 tokens: a share cut at a sentence leaves part of it, and the file must
    still count as cut, not ended."""
    folder = tmp_path / "book"
    folder.mkdir()
    for i in range(4):
        (folder / f"ch{i}.txt").write_text("\n\n".join(f"Chapter {i} paragraph {j} has words, and the cat sat on "
                                                      "the mat by the door of the old house and looked at the "
                                                      "garden for a long while, as cats do." for j in range(400)))
    (folder / "ch9.txt").write_text("The end of the book, in one short sentence.")
    report = inputs.InputReport()
    texts = list(inputs.read(folder, max_tokens_total=2000, meter=meter, report=report))
    assert 2000 - ONE_SENTENCE <= tokens(texts, meter) <= 2000, tokens(texts, meter)
    assert (report.files, report.kept) == (5, 5)  # a file read again for the top-up counts once
    assert texts[4] == "The end of the book, in one short sentence." and len(texts) > 5
    for chapter in range(4):  # each chapter's paragraphs given once each, in order, from its start
        given = [int(j) for j in re.findall(rf"Chapter {chapter} paragraph (\d+)", "\n".join(texts))]
        assert given == list(range(len(given))) and len(given) > 1


def test_a_short_file_leaves_its_share_to_the_next_and_rows_stop_at_the_cap(tmp_path, meter):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.txt").write_text("Only a short one.")
    (folder / "b.jsonl").write_text("\n".join(json.dumps({"text": paragraphs(3)}) for _ in range(500)))
    texts = list(inputs.read(folder, max_tokens_total=3000, meter=meter))
    assert texts[0] == "Only a short one." and 3000 - ONE_SENTENCE <= tokens(texts, meter) <= 3000
    assert list(inputs.read(folder)) [1:] == [paragraphs(3)] * 500  # no cap: everything


def test_a_sample_of_one_text_ends_at_a_sentence_near_the_cap(meter):
    text = "A long paragraph with many sentences. " * 500  # no paragraph break at all
    cut = sample.sample_text(text, 1000, meter)
    assert cut.endswith("sentences.") and 1000 - 8 <= meter.count(cut) <= 1000


def test_the_cap_is_counted_in_tokens_not_characters(meter):
    """Text of many tokens per character (digits, symbols, another script) or of few: a character
    estimate misses the cap by far; the tokenizer's count holds it."""
    for sentence in ("3.14159 + 2.71828 = 5.85987. ", "Das Eichhörnchen frisst Haselnüsse. ",
                     "Ελληνικά γράμματα εδώ. ", "Incomprehensibilities notwithstanding. "):
        cut = sample.sample_text(sentence * 2000, 1000, meter)
        assert 1000 - 30 <= meter.count(cut) <= 1000, (sentence, meter.count(cut))


def test_a_cap_without_a_tokenizer_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("Some text. " * 1000)
    with pytest.raises(ValueError, match="tokenizer"):
        list(inputs.read(tmp_path, max_tokens_total=1000))
