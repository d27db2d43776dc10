"""What the CLI tells the user: files passed over, the weights that actually run, progress by megapixels,
training steps and pace from the start."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.io import scan_inputs
from lowlight_cli.training import InfoEvent, PaceEvent, PlanEvent, StepEvent, Trainer, build_config

from .photos import dark_photo, save_photo

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("no_hub")


@pytest.fixture()
def mixed(tmp_path) -> Path:
    """A folder with two photos of different sizes and what is not an image."""
    folder = tmp_path / "in"
    save_photo(folder / "big.png", dark_photo(300, 400))
    save_photo(folder / "small.jpg", dark_photo(30, 40, seed=1))
    (folder / "anim.gif").write_bytes(b"GIF89a" + b"\0" * 20)
    os.symlink(folder / "gone.png", folder / "broken.png")
    os.symlink(folder / "loop.jpg", folder / "loop.jpg")
    (folder / ".hidden.png").write_bytes(b"not listed")
    return folder


def test_files_passed_over_are_counted_and_listed_with_verbose(mixed, tmp_path):
    found = scan_inputs([mixed])
    assert [f.path.name for f in found.files] == ["big.png", "small.jpg"]
    reasons = {s.path.name: s.reason for s in found.skipped if not s.quiet}
    assert reasons == {"anim.gif": "unsupported format (.gif)", "broken.png": "broken symbolic link", "loop.jpg": "symbolic link loop"}
    assert {s.path.name: s.reason for s in found.skipped if s.quiet} == {".hidden.png": "hidden file"}
    result = runner.invoke(app, ["enhance", str(mixed), "-o", str(tmp_path / "out"), "-m", "gamma"])
    assert result.exit_code == 0, result.output
    assert "ignored 3 file(s)" in result.stderr and "--verbose" in result.stderr and "anim.gif" not in result.stderr
    verbose = runner.invoke(app, ["enhance", str(mixed), "-o", str(tmp_path / "out2"), "-m", "gamma", "--verbose"])
    # --verbose lists every file passed over, hidden ones too (they are not in the count above)
    assert all(name in verbose.stderr for name in ("anim.gif", "broken.png", "loop.jpg", ".hidden.png"))
    # --json lists them too (hidden files, never counted, left out), as does --dry-run --json
    for extra in ([], ["--dry-run"]):
        summary = json.loads(runner.invoke(app, ["enhance", str(mixed), "-o", str(tmp_path / f"out{len(extra)}"), "-m",
                                                 "gamma", "--json", *extra]).stdout)
        assert {Path(i["path"]).name: i["reason"] for i in summary["ignored"]} == reasons


def test_symlinked_and_hidden_folders_are_named_not_dropped_silently(mixed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    save_photo(elsewhere / "x.png", dark_photo(30, 40, seed=2))
    os.symlink(elsewhere, mixed / "linked")
    save_photo(mixed / ".secret" / "h.png", dark_photo(30, 40, seed=3))
    found = scan_inputs([mixed], recursive=True)
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert "not followed" in reasons["linked"] and reasons[".secret"] == "hidden folder"
    assert "x.png" not in {f.path.name for f in found.files}
    result = runner.invoke(app, ["enhance", str(mixed), "-r", "-o", str(tmp_path / "out"), "-m", "gamma"])
    assert result.exit_code == 0 and "symbolic link to a folder" in result.stderr, result.output


def test_first_line_names_the_weights_that_run(tmp_path):
    photo = save_photo(tmp_path / "a.png", dark_photo(32, 48))
    result = runner.invoke(app, ["enhance", str(photo), "-o", str(tmp_path / "out"), "-m", "crnet"])
    assert result.exit_code == 0, result.output
    first = result.stderr.splitlines()[0]
    from lowlight_cli.models import MODELS

    best = MODELS.get("crnet").info.bundled_weights  # the family's best LOL weights, a crnet-curve-dn checkpoint
    assert first.startswith(f"crnet with bundled weights {best} (crnet-curve-dn architecture"), first


def test_models_says_what_each_name_runs_by_default():
    rows = {r["name"]: r for r in json.loads(runner.invoke(app, ["models", "--json"]).stdout)}
    assert rows["crnet"]["bundled_parameters"] == rows["crnet-curve-dn"]["parameters"] != rows["crnet"]["parameters"]
    table = runner.invoke(app, ["models"], env={"COLUMNS": "300"}).stdout
    assert "runs by default" in table and f"crnet-curve-dn, {rows['crnet-curve-dn']['parameters']:,} params" in table


def test_models_piped_keeps_every_cell_whole_whatever_the_width():
    """Piped (``lowlight models | grep NAME``), at 80 columns or 60: every column, at the table's natural
    width, no cell folded over two lines (a weights name cut in two is found by no grep)."""
    for columns in ("80", "60"):
        table = runner.invoke(app, ["models"], env={"COLUMNS": columns}).stdout
        lines = [line for line in table.splitlines() if line.startswith("│")]
        listed = {line.split("│")[1].strip() for line in lines if line.split("│")[1].strip()}
        assert {"crnet-s", "crnet-curve", "crnet-curve-dn", "semi-llie-s"} <= listed
        assert len(listed) == len(lines)  # one line per model: nothing folded onto a second line
        assert any(line.split("│")[1].strip() == "crnet-curve-dn" and "crnet-curve-dn-lol" in line for line in lines)
        assert "other weights" in table  # every column


def test_enhance_progress_counts_megapixels(mixed, tmp_path, monkeypatch):
    import lowlight_cli.cli.enhance as cli_enhance

    seen: dict[str, float] = {}

    class Recording(cli_enhance.Progress):
        def add_task(self, description, *args, total=None, **kwargs):
            seen.setdefault(f"{description} total", total)
            return super().add_task(description, *args, total=total, **kwargs)

        def advance(self, task_id, advance=1):
            seen.setdefault("steps", [])
            seen["steps"].append(advance)
            super().advance(task_id, advance)

    monkeypatch.setattr(cli_enhance, "Progress", Recording)
    result = runner.invoke(app, ["enhance", str(mixed), "-o", str(tmp_path / "out"), "-m", "gamma"])
    assert result.exit_code == 0, result.output
    megapixels = [300 * 400 / 1e6, 30 * 40 / 1e6]
    assert seen["images total"] == pytest.approx(sum(megapixels))
    assert seen["steps"] == pytest.approx(megapixels)  # the big image moves the bar 100 times as far


SMOKE = {"model.name": "crnet-tiny", "data.root": "synthetic", "data.synthetic_count": 10, "data.patch_size": 32,
         "data.patches_per_image": 4, "data.batch_size": 4, "run.device": "cpu", "run.log_every": 5, "optim.max_steps": 6}


def test_training_reports_its_steps_before_the_first_and_its_pace_early(tmp_path):
    events: list[object] = []
    cfg = build_config(flags=SMOKE).validate()
    Trainer(cfg, tmp_path / "run").fit(events.append)
    kinds = [type(e) for e in events if not isinstance(e, InfoEvent)]
    plan = next(e for e in events if isinstance(e, PlanEvent))
    assert kinds.index(PlanEvent) < kinds.index(StepEvent) and plan.total_steps == 6 and plan.start_step == 0
    pace = next(e for e in events if isinstance(e, PaceEvent))
    assert kinds.index(PaceEvent) < kinds.index(StepEvent)  # before the first log line (step 5)
    assert pace.seconds_per_step > 0 and pace.steps_left == 2


def test_train_on_a_cpu_gives_the_time_per_epoch_and_the_cpu_model(tmp_path, monkeypatch):
    from lowlight_cli.cli import train as cli_train

    assert cli_train.cpu_alternative(build_config(flags={"model.name": "crnet"})) == "crnet-curve"
    assert cli_train.cpu_alternative(build_config(flags={"model.name": "crnet-s"})) == "crnet-curve"
    assert cli_train.cpu_alternative(build_config(flags={"model.name": "crnet-curve"})) is None
    assert cli_train.cpu_alternative(build_config(flags={"model.name": "crnet-curve-dn"})) is None  # 1.2x: a CPU model too
    monkeypatch.setattr(cli_train, "cpu_alternative", lambda cfg: "crnet-curve")  # as for crnet, without its slow steps
    args = [a for key, value in SMOKE.items() for a in ("--set", f"{key}={value}")]
    result = runner.invoke(app, ["train", *args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "per epoch" in result.output and "--model crnet-curve" in result.output
