"""Photos read ahead: io.prefetch (valid only when unchanged) and enhance's read-ahead of the next
photo of a folder."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.errors import ImageReadError
from lowlight_cli.io import prefetch as prefetch_module
from lowlight_cli.io import read_image
from lowlight_cli.io.prefetch import ImagePrefetch

from .photos import dark_photo, save_photo


@pytest.fixture
def reads(monkeypatch):
    """Every read_image the prefetch makes, as (file name, thread name)."""
    seen: list[tuple[str, str]] = []
    real = prefetch_module.read_image

    def counted(path, **kwargs):
        seen.append((Path(path).name, threading.current_thread().name))
        return real(path, **kwargs)

    monkeypatch.setattr(prefetch_module, "read_image", counted)
    return seen


def test_an_image_read_ahead_is_taken_once_and_equals_a_plain_read(tmp_path, reads):
    photo = save_photo(tmp_path / "a.png", dark_photo(40, 56, seed=1))
    prefetch = ImagePrefetch()
    prefetch.start(photo)
    image = prefetch.take(os.path.relpath(photo))  # another spelling of the same file
    assert reads == [("a.png", "lowlight-read-ahead")]
    assert np.array_equal(image.rgb, read_image(photo).rgb)
    assert prefetch.pending() == []
    prefetch.take(photo)  # taken already: read again, now
    assert reads[-1] == ("a.png", threading.current_thread().name)


def test_a_file_changed_after_its_read_ahead_is_read_again(tmp_path, reads):
    photo = save_photo(tmp_path / "a.png", dark_photo(40, 56, seed=1))
    prefetch = ImagePrefetch()
    prefetch.start(photo)
    assert prefetch._reads[Path(os.path.abspath(photo))].done.wait(30)
    before = read_image(photo).rgb
    save_photo(photo, dark_photo(40, 56, seed=2))
    os.utime(photo, ns=(1, 1))  # whatever the clock's resolution: a new modification time
    taken = prefetch.take(photo).rgb
    assert len(reads) == 2 and reads[1][1] == threading.current_thread().name
    assert np.array_equal(taken, read_image(photo).rgb) and not np.array_equal(taken, before)


def test_a_failed_read_ahead_is_reported_by_the_read_at_use(tmp_path, reads):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    prefetch = ImagePrefetch()
    prefetch.start(bad)
    with pytest.raises(ImageReadError) as raised:
        prefetch.take(bad)
    assert reads == [("bad.png", "lowlight-read-ahead"), ("bad.png", threading.current_thread().name)]  # ahead, then again
    with pytest.raises(ImageReadError) as plain:
        read_image(bad)
    assert str(raised.value) == str(plain.value)
    missing = tmp_path / "later.png"  # missing when read ahead, there when used
    prefetch.start(missing)
    save_photo(missing, dark_photo(24, 24, seed=3))
    assert prefetch.take(missing).rgb.shape == (24, 24, 3)


def test_a_read_ahead_under_another_pixel_limit_is_not_used(tmp_path, reads):
    photo = save_photo(tmp_path / "a.png", dark_photo(40, 56, seed=1))
    prefetch = ImagePrefetch()
    prefetch.start(photo, max_pixels=10)  # refused ahead ...
    assert prefetch.take(photo).rgb.shape == (40, 56, 3)  # ... but the use allows it
    with pytest.raises(Exception, match="pixels"):
        ImagePrefetch().take(photo, max_pixels=10)
    prefetch.start(photo)
    prefetch.discard()
    assert prefetch.pending() == []


def _enhance(args: list[str]):
    result = CliRunner().invoke(app, ["enhance", *args, "--model", "gamma", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return result


def test_enhance_reads_the_next_photo_of_a_folder_ahead_off_the_cpu_and_writes_the_same(tmp_path, reads, monkeypatch):
    import lowlight_cli.cli.enhance as cli_enhance

    on = lambda device: type("Enhancer", (), {"device": torch.device(device)})()  # noqa: E731
    assert not cli_enhance.reads_ahead(on("cpu")) and cli_enhance.reads_ahead(on("cuda")) and cli_enhance.reads_ahead(on("mps"))
    folder = tmp_path / "in"
    for i in range(3):
        save_photo(folder / f"{i}.png", dark_photo(32 + 8 * i, 48, seed=i))
    _enhance([str(folder), "-o", str(tmp_path / "cpu")])  # on the CPU, torch's threads take every core: no read ahead
    assert {thread for _, thread in reads} == {threading.current_thread().name}
    monkeypatch.setenv("LOWLIGHT_READ_AHEAD", "1")  # unless told (the benchmark's A/B)
    assert cli_enhance.reads_ahead(on("cpu"))
    monkeypatch.setenv("LOWLIGHT_READ_AHEAD", "0")
    assert not cli_enhance.reads_ahead(on("cuda"))
    monkeypatch.delenv("LOWLIGHT_READ_AHEAD")
    reads.clear()
    monkeypatch.setattr(cli_enhance, "reads_ahead", lambda enhancer: True)  # as on a GPU
    _enhance([str(folder), "-o", str(tmp_path / "ahead")])
    main = threading.current_thread().name
    # the first read when needed, on this thread; each of the others, once the one before was read, while it was enhanced
    assert reads == [("0.png", main), ("1.png", "lowlight-read-ahead"), ("2.png", "lowlight-read-ahead")]
    monkeypatch.setattr("lowlight_cli.cli.enhance.READ_AHEAD_MAX_MEGAPIXELS", 0.0)  # none read ahead
    reads.clear()
    _enhance([str(folder), "-o", str(tmp_path / "plain")])
    assert {thread for _, thread in reads} == {threading.current_thread().name}
    for i in range(3):
        assert (tmp_path / "ahead" / f"{i}.png").read_bytes() == (tmp_path / "plain" / f"{i}.png").read_bytes()


def test_a_photo_that_fails_to_read_still_lets_the_next_be_read_ahead(tmp_path, reads, monkeypatch):
    monkeypatch.setattr("lowlight_cli.cli.enhance.reads_ahead", lambda enhancer: True)
    folder = tmp_path / "in"
    (folder / "0.png").parent.mkdir()
    (folder / "0.png").write_bytes(b"not an image")
    save_photo(folder / "1.png", dark_photo(32, 48, seed=1))
    result = CliRunner().invoke(app, ["enhance", str(folder), "-o", str(tmp_path / "out"), "--model", "gamma", "--device", "cpu"])
    assert result.exit_code == 3 and "0.png" in result.output  # one failed, the other written
    assert (tmp_path / "out" / "1.png").is_file()
    assert reads[1] == ("1.png", "lowlight-read-ahead")


def test_a_run_waits_for_a_read_ahead_before_it_reports(tmp_path, monkeypatch):
    """A decoder holds standard error while it runs: an interrupted run waits for the read ahead
    before its last lines are printed (and starts no other)."""
    import lowlight_cli.cli.enhance as cli_enhance

    monkeypatch.setattr(cli_enhance, "reads_ahead", lambda enhancer: True)
    waited: list[bool] = []
    real_discard = ImagePrefetch.discard

    def discard(self, *, wait=False):
        waited.append(wait)
        real_discard(self, wait=wait)

    monkeypatch.setattr(ImagePrefetch, "discard", discard)
    started: list[str] = []
    real_start = ImagePrefetch.start
    monkeypatch.setattr(ImagePrefetch, "start", lambda self, path, **kw: (started.append(Path(path).name), real_start(self, path, **kw)))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    folder = tmp_path / "in"
    for i in range(3):
        save_photo(folder / f"{i}.png", dark_photo(32, 48, seed=i))
    monkeypatch.setattr(cli_enhance.Enhancer, "enhance_pixels", interrupted)
    result = CliRunner().invoke(app, ["enhance", str(folder), "-o", str(tmp_path / "out"), "--model", "gamma", "--device", "cpu"])
    assert result.exit_code == 130
    assert waited == [True] and started == ["1.png"]  # the next was read ahead, then waited for; none after


def test_score_test_set_refuses_names_that_are_not_a_collection(tmp_path):
    from lowlight_cli.evaluation import score_test_set

    for side in ("low", "high"):
        save_photo(tmp_path / side / "1.png", dark_photo(24, 24, seed=1))
    for names in ((), "1"):
        with pytest.raises(ValueError, match="names takes"):
            score_test_set(tmp_path / "low", tmp_path / "high", None, ("psnr",), names=names)
