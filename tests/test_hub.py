"""Weights resolution and Hub downloads, against a local HTTP server that answers like the Hub.

Nothing here leaves 127.0.0.1: ``HF_ENDPOINT`` points at :class:`tests.fake_hub.FakeHub`, and the
caches (``LOWLIGHT_CACHE``, ``HF_HOME``, huggingface_hub's cache) live in ``tmp_path``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from huggingface_hub.utils import _detect_agent
from safetensors.torch import save_file

import lowlight_cli
import lowlight_cli.hub as hub_api
import lowlight_cli.hub.download as download_module
from lowlight_cli.errors import CheckpointError, WeightsIntegrityError, WeightsNotFoundError
from lowlight_cli.hub import (
    HubRef,
    bundled_weights_dir,
    cache_dir,
    download_checkpoint,
    is_hub_ref,
    resolve_weights,
    sha256_file,
    verify_checkpoint,
)

from .fake_hub import FakeHub

MODEL = "crnet-tiny"
TINY = HubRef("org/tiny", "main")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_checkpoint(folder: Path, *, seed: int = 0, record_sha256: bool = True) -> dict[str, bytes]:
    """Write a real tiny checkpoint folder; return its files' bytes by name."""
    folder.mkdir(parents=True)
    weights = folder / "model.safetensors"
    save_file({"w": torch.randn(4, 4, generator=torch.Generator().manual_seed(seed))}, str(weights))
    config = {"format_version": 1, "architecture": MODEL, "kwargs": {}, "provenance": {"seed": seed}}
    if record_sha256:
        config["sha256"] = {"model.safetensors": sha256_file(weights)}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def cache_of(ref: HubRef) -> Path:
    return cache_dir() / "weights" / ref.repo_id.replace("/", "--") / ref.revision.replace("/", "--")


def files_holding(root: Path, payloads: set[bytes], skip: Path) -> list[Path]:
    """Every file under ``root`` (outside ``skip``) whose bytes are one of ``payloads``."""
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and skip not in path.parents and path.read_bytes() in payloads
    ]


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if anything resolves or connects to a host other than loopback.

    Attempts are recorded rather than only refused, since huggingface_hub swallows some errors.
    """
    attempts: list[object] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host not in LOOPBACK:
            attempts.append(host)
            raise OSError(f"test forbids resolving {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(sock: socket.socket, address) -> None:  # type: ignore[no-untyped-def]
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            attempts.append(address)
            raise OSError(f"test forbids connecting to {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    yield
    assert attempts == [], f"network access outside loopback: {attempts}"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A running fake Hub, with every cache in ``tmp_path`` and offline mode off."""
    monkeypatch.setenv("LOWLIGHT_CACHE", str(tmp_path / "lowlight-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # huggingface_hub read these at import time; point them at tmp_path too.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    # huggingface_hub fetches an "agent harness" list from its import-time endpoint (huggingface.co)
    # when it first builds request headers: give it an empty one so nothing leaves loopback.
    monkeypatch.setattr(_detect_agent, "_registry", {"standardEnvVars": [], "harnesses": {}})
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


@pytest.fixture
def tiny(hub: FakeHub, tmp_path: Path) -> dict[str, bytes]:
    """``org/tiny@main`` published on the fake Hub (config records the sha256; LFS advertises it)."""
    files = make_checkpoint(tmp_path / "src" / "tiny")
    hub.add(TINY.repo_id, files)
    return files


# --- HubRef ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hf-hub:org/repo", HubRef("org/repo", "main")),
        ("hf-hub:org/repo@v1.0", HubRef("org/repo", "v1.0")),
        ("hf-hub:Org-1/re_po.x@" + "a" * 40, HubRef("Org-1/re_po.x", "a" * 40)),
        ("hf-hub:org/repo@refs/pr/1", HubRef("org/repo", "refs/pr/1")),
    ],
)
def test_hubref_parses_repo_and_revision(text: str, expected: HubRef) -> None:
    ref = HubRef.parse(text)
    assert ref == expected
    assert HubRef.parse(str(ref)) == ref  # round trip through the canonical form


@pytest.mark.parametrize(
    "text",
    [
        "org/repo",  # no prefix
        "hf-hub:",
        "hf-hub:repo",  # no org
        "hf-hub:a/b/c",
        "hf-hub:org/repo@",
        "hf-hub:org/repo@a@b",
        "hf-hub:org/re po",
        "hf-hub:-org/repo",
        "hf-hub:org/..",
        "hf-hub:org/repo@../../etc",  # would escape the cache folder
    ],
)
def test_hubref_rejects_bad_syntax_with_a_hint(text: str) -> None:
    with pytest.raises(WeightsNotFoundError) as info:
        HubRef.parse(text)
    assert repr(text) in str(info.value)
    assert "hf-hub:ORG/REPO@REVISION" in (info.value.hint or "")


def test_is_hub_ref_only_for_prefixed_strings() -> None:
    assert is_hub_ref("hf-hub:org/repo")
    assert not is_hub_ref("weights/crnet")
    assert not is_hub_ref(Path("hf-hub:org/repo"))  # a Path is always a local folder


# --- cache_dir and bundled weights ----------------------------------------------------------------


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LOWLIGHT_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == tmp_path / "home" / ".cache" / "lowlight"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "lowlight"
    monkeypatch.setenv("LOWLIGHT_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_bundled_weights_dir_is_the_checkouts_weights_folder() -> None:
    checkout_weights = Path(__file__).resolve().parents[1] / "weights"
    if not checkout_weights.is_dir():
        pytest.skip("this checkout has no weights/ folder")
    assert bundled_weights_dir() == Path(lowlight_cli.__file__).parent.parent / "weights"
    assert bundled_weights_dir().resolve() == checkout_weights


# --- verify_checkpoint ---------------------------------------------------------------------------


def test_verify_checkpoint_accepts_a_consistent_folder(tmp_path: Path) -> None:
    make_checkpoint(tmp_path / "ck")
    verify_checkpoint(tmp_path / "ck")


def test_verify_checkpoint_rejects_wrong_recorded_sha256(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    make_checkpoint(folder)
    config = json.loads((folder / "config.json").read_text())
    config["sha256"]["model.safetensors"] = "0" * 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsIntegrityError) as info:
        verify_checkpoint(folder)
    message = str(info.value)
    assert str(folder / "model.safetensors") in message
    assert "0" * 64 in message and sha256_file(folder / "model.safetensors") in message


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda f: (f / "config.json").unlink(), "config.json"),
        (lambda f: (f / "config.json").write_text("{not json"), "config.json"),
        (lambda f: (f / "config.json").write_text('{"kwargs": {}}'), "config.json"),  # no architecture
        (lambda f: (f / "model.safetensors").unlink(), "model.safetensors"),
    ],
    ids=["missing-config", "invalid-json", "no-architecture", "missing-weights"],
)
def test_verify_checkpoint_names_the_broken_file(tmp_path: Path, damage, named: str) -> None:
    folder = tmp_path / "ck"
    make_checkpoint(folder)
    damage(folder)
    with pytest.raises(CheckpointError) as info:
        verify_checkpoint(folder)
    assert str(folder / named) in str(info.value)


# --- download_checkpoint -------------------------------------------------------------------------


@pytest.mark.parametrize(("revision", "card"), [("main", True), ("refs/pr/1", False)])
def test_download_is_byte_identical_and_cached(hub: FakeHub, tmp_path: Path, revision: str, card: bool) -> None:
    files = make_checkpoint(tmp_path / "src")
    if card:
        files["MODEL_CARD.md"] = b"# tiny\n\nA test checkpoint.\n"
    commit = hub.add("org/tiny", files, revision=revision)
    ref = HubRef.parse(f"hf-hub:org/tiny@{revision}")

    folder = download_checkpoint(ref)

    assert folder == cache_of(ref)
    assert folder.parent.name == "org--tiny"  # a revision with "/" stays one folder
    for name, data in files.items():
        assert (folder / name).read_bytes() == data, name
    assert (folder / "MODEL_CARD.md").exists() == card
    record = json.loads((folder / "download.json").read_text())
    assert record["commit"] == commit and record["sha256"]["model.safetensors"] == sha256(files["model.safetensors"])
    assert sorted(p.name for p in (cache_dir() / "weights").iterdir()) == ["org--tiny"]  # no temp folder left
    assert hub.requests, "the first call must download"

    hub.requests.clear()
    assert download_checkpoint(ref) == folder
    assert hub.requests == []  # cache hit: no network at all


@pytest.mark.parametrize(
    ("record_sha256", "advertise_sha256", "mode"),
    [(False, True, "flip"), (True, False, "flip"), (True, True, "truncate")],
    ids=["caught-by-lfs-sha256", "caught-by-config-sha256", "caught-by-size"],
)
def test_corrupt_download_raises_and_caches_nothing(
    hub: FakeHub, tmp_path: Path, record_sha256: bool, advertise_sha256: bool, mode: str
) -> None:
    src = tmp_path / "src"
    files = make_checkpoint(src, record_sha256=record_sha256)
    hub.add("org/tiny", files)
    hub.advertise_sha256 = advertise_sha256
    hub.corrupt("org/tiny", "model.safetensors", mode=mode)
    served = hub.served_bytes("org/tiny", "model.safetensors")
    assert served != files["model.safetensors"]

    with pytest.raises(WeightsIntegrityError) as info:
        download_checkpoint(TINY)

    message = str(info.value)
    assert "model.safetensors" in message and str(TINY) in message
    assert "download-" not in message  # names the Hub file, not a vanished temporary path
    if mode == "flip":
        assert sha256(files["model.safetensors"]) in message and sha256(served) in message
    assert not cache_of(TINY).parent.exists()
    assert files_holding(tmp_path, {served, files["model.safetensors"]}, skip=src) == []
    assert list((cache_dir() / "weights").iterdir()) == []


def test_huggingface_shared_cache_is_neither_read_nor_written(hub: FakeHub, tiny: dict[str, bytes]) -> None:
    shared = Path(constants.HF_HUB_CACHE)  # the fixture points it into tmp_path
    poisoned = shared / "models--org--tiny" / "snapshots" / hub.commit_of("org/tiny", "main") / "model.safetensors"
    poisoned.parent.mkdir(parents=True)
    poisoned.write_bytes(b"stale blob from another tool")
    folder = download_checkpoint(TINY)
    assert (folder / "model.safetensors").read_bytes() == tiny["model.safetensors"]
    assert [p for p in shared.rglob("*") if p.is_file()] == [poisoned]


def test_expected_sha256_is_enforced(hub: FakeHub, tiny: dict[str, bytes]) -> None:
    with pytest.raises(WeightsIntegrityError) as info:
        download_checkpoint(TINY, expected_sha256="f" * 64)
    assert "f" * 64 in str(info.value) and "registry" in str(info.value)
    assert not cache_of(TINY).exists()

    folder = download_checkpoint(TINY, expected_sha256=sha256(tiny["model.safetensors"]).upper())
    assert (folder / "model.safetensors").read_bytes() == tiny["model.safetensors"]


def test_download_without_any_known_sha256_is_refused(hub: FakeHub, tmp_path: Path) -> None:
    hub.add("org/tiny", make_checkpoint(tmp_path / "src", record_sha256=False))
    hub.advertise_sha256 = False
    with pytest.raises(WeightsIntegrityError, match="cannot be verified"):
        download_checkpoint(TINY)
    assert not cache_of(TINY).exists()


def test_malformed_hub_config_is_a_checkpoint_error(hub: FakeHub, tmp_path: Path) -> None:
    files = make_checkpoint(tmp_path / "src")
    hub.add("org/tiny", {**files, "config.json": b"{not json"})
    with pytest.raises(CheckpointError) as info:
        download_checkpoint(TINY)
    assert f"{TINY}/config.json" in str(info.value)
    assert not cache_of(TINY).exists()


@pytest.mark.parametrize("record_sha256", [True, False], ids=["config-records-sha256", "only-lfs-sha256"])
def test_damaged_cache_is_downloaded_again(hub: FakeHub, tmp_path: Path, record_sha256: bool) -> None:
    # without a sha256 block in config.json, only download.json remembers what was verified
    files = make_checkpoint(tmp_path / "src", record_sha256=record_sha256)
    hub.add(TINY.repo_id, files)
    folder = download_checkpoint(TINY)
    (folder / "model.safetensors").write_bytes(b"bit rot")
    hub.requests.clear()
    assert download_checkpoint(TINY) == folder
    assert (folder / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert hub.requests


def test_cache_entry_without_download_record_is_downloaded_again(hub: FakeHub, tiny: dict[str, bytes]) -> None:
    folder = download_checkpoint(TINY)
    (folder / "download.json").unlink()  # e.g. a checkpoint copied into the cache by hand
    hub.requests.clear()
    assert download_checkpoint(TINY) == folder
    assert hub.requests
    assert json.loads((folder / "download.json").read_text())["sha256"]["model.safetensors"] == sha256(
        tiny["model.safetensors"]
    )


def test_registry_pin_change_invalidates_the_cache(hub: FakeHub, tiny: dict[str, bytes]) -> None:
    download_checkpoint(TINY)
    hub.requests.clear()
    with pytest.raises(WeightsIntegrityError, match="registry"):
        download_checkpoint(TINY, expected_sha256="e" * 64)
    assert hub.requests  # the cached copy did not satisfy the new pin, so the Hub was asked


@pytest.fixture(params=["env", "constant"])
def offline(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Switch offline mode on, by the variable set after import or by huggingface_hub's constant."""

    def switch_on() -> None:
        if request.param == "env":
            monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        else:
            monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    return switch_on


def test_offline_uses_the_cache_without_requests(hub: FakeHub, tiny: dict[str, bytes], offline) -> None:
    folder = download_checkpoint(TINY)
    offline()
    hub.requests.clear()
    assert download_checkpoint(TINY) == folder
    assert hub.requests == []


def test_offline_without_cache_says_so(hub: FakeHub, tiny: dict[str, bytes], offline) -> None:
    offline()
    with pytest.raises(WeightsNotFoundError) as info:
        download_checkpoint(TINY)
    assert "HF_HUB_OFFLINE" in str(info.value) and "HF_HUB_OFFLINE" in (info.value.hint or "")
    assert str(cache_of(TINY)) in str(info.value) and "--weights FOLDER" in info.value.hint  # where it looked, what else works
    assert hub.requests == []


def test_offline_with_damaged_cache_raises_integrity_error(hub: FakeHub, tiny: dict[str, bytes], offline) -> None:
    folder = download_checkpoint(TINY)
    (folder / "model.safetensors").write_bytes(b"bit rot")
    offline()
    with pytest.raises(WeightsIntegrityError, match="model.safetensors"):
        download_checkpoint(TINY)


@pytest.mark.parametrize(
    ("ref", "mentions"),
    [
        (HubRef("org/absent", "main"), "org/absent"),
        (HubRef("org/tiny", "v9"), "'v9'"),
        (HubRef("org/empty", "main"), "model.safetensors"),
        (HubRef("org/noconfig", "main"), "config.json"),
    ],
    ids=["missing-repo", "missing-revision", "missing-weights", "missing-config"],
)
def test_missing_repo_revision_or_file(hub: FakeHub, tiny: dict[str, bytes], ref: HubRef, mentions: str) -> None:
    hub.add("org/empty", {"README.md": b"nothing here\n"})
    hub.add("org/noconfig", {"model.safetensors": tiny["model.safetensors"]})
    with pytest.raises(WeightsNotFoundError) as info:
        download_checkpoint(ref)
    assert mentions in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.hint
    assert not cache_of(ref).exists()


def test_unreachable_hub(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(WeightsNotFoundError) as info:
        download_checkpoint(TINY)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "HF_HUB_OFFLINE" in (info.value.hint or "")


@pytest.mark.parametrize("failure", [RuntimeError("Data processing error: CAS service error : Reqwest error"),
                                     type("XetAuthenticationError", (PermissionError,), {"__module__": "hf_xet"})("token")])
def test_xet_storage_failure_is_a_clear_error(
    hub: FakeHub, tiny: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    """hf_xet fails with RuntimeError (or OSError subclasses of its own): one line naming the file
    and the plain-HTTP way round it, nothing cached, no traceback."""
    def failing(*args, **kwargs):
        raise failure

    monkeypatch.setattr(download_module, "hf_hub_download", failing)
    with pytest.raises(WeightsNotFoundError) as info:
        download_checkpoint(TINY)
    assert "from Xet storage" in str(info.value) and str(failure).splitlines()[0] in str(info.value)
    assert "HF_HUB_DISABLE_XET=1" in (info.value.hint or "")
    assert not cache_of(TINY).exists()


# --- resolve_weights -----------------------------------------------------------------------------


def test_resolution_order(hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = tmp_path / "explicit"
    make_checkpoint(explicit, seed=1)
    bundled = tmp_path / "bundled"
    make_checkpoint(bundled / MODEL, seed=2)
    hub_files = make_checkpoint(tmp_path / "src", seed=3)
    hub.add(TINY.repo_id, hub_files)
    monkeypatch.setattr(hub_api, "bundled_weights_dir", lambda: bundled)
    cached = download_checkpoint(TINY)
    hub.requests.clear()

    # 1. an explicit folder beats everything, as a Path or a str
    assert resolve_weights(MODEL, explicit, hub_ref=TINY) == explicit
    assert resolve_weights(MODEL, str(explicit), hub_ref=TINY) == explicit
    # 2. bundled beats the cache
    assert resolve_weights(MODEL, hub_ref=TINY) == bundled / MODEL
    # bundled weights of another model do not count
    assert resolve_weights("crnet-s", hub_ref=TINY) == cached
    assert hub.requests == []
    # 3. the cache beats the Hub
    shutil.rmtree(bundled / MODEL)
    assert resolve_weights(MODEL, hub_ref=TINY) == cached
    assert hub.requests == []
    # 4. the Hub comes last
    shutil.rmtree(cached)
    assert resolve_weights(MODEL, hub_ref=TINY) == cached
    assert hub.requests
    assert (cached / "model.safetensors").read_bytes() == hub_files["model.safetensors"]


def test_explicit_hub_ref_applies_the_pin_only_to_the_registered_repo(
    hub: FakeHub, tiny: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_api, "bundled_weights_dir", lambda: None)
    other = make_checkpoint(tmp_path / "src" / "other", seed=4)
    hub.add("org/other", other, revision="v2")
    folder = resolve_weights(MODEL, "hf-hub:org/other@v2", hub_ref=TINY, expected_sha256="0" * 64)
    assert (folder / "model.safetensors").read_bytes() == other["model.safetensors"]
    with pytest.raises(WeightsIntegrityError):
        resolve_weights(MODEL, "hf-hub:org/tiny@main", hub_ref=TINY, expected_sha256="0" * 64)


def test_explicit_folder_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights(MODEL, missing)
    assert str(missing) in str(info.value)
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(WeightsNotFoundError, match="not a checkpoint folder"):
        resolve_weights(MODEL, tmp_path / "model.safetensors")


def test_explicit_folder_is_verified(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    make_checkpoint(folder)
    (folder / "model.safetensors").write_bytes(b"edited")
    with pytest.raises(WeightsIntegrityError):
        resolve_weights(MODEL, folder)


def test_no_weights_anywhere(hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_api, "bundled_weights_dir", lambda: tmp_path / "empty")
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights(MODEL)
    assert str(info.value) == f"no trained weights for model {MODEL!r}"
    assert "--no-pretrained" in (info.value.hint or "") and "--weights" in (info.value.hint or "")
    assert hub.requests == []


def test_registered_repo_unavailable_offline(hub: FakeHub, tiny: dict[str, bytes], monkeypatch) -> None:
    monkeypatch.setattr(hub_api, "bundled_weights_dir", lambda: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights(MODEL, hub_ref=TINY)
    assert f"no trained weights for model {MODEL!r}" in str(info.value) and "HF_HUB_OFFLINE" in str(info.value)
    assert "--no-pretrained" in (info.value.hint or "") and "HF_HUB_OFFLINE" in (info.value.hint or "")


def test_bundled_checkpoints_are_found_by_their_own_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model's default bundled folder may be named apart from it (crnet-s -> crnet-s-lol), and
    ``--weights crnet-s-lol-semi10`` names another bundled checkpoint of the same family."""
    bundled = tmp_path / "bundled"
    make_checkpoint(bundled / "tiny-lol", seed=1)
    make_checkpoint(bundled / "tiny-lol-semi10", seed=2)
    monkeypatch.setattr(hub_api, "bundled_weights_dir", lambda: bundled)
    assert resolve_weights(MODEL, bundled_name="tiny-lol") == bundled / "tiny-lol"
    assert resolve_weights(MODEL, "tiny-lol-semi10", bundled_name="tiny-lol") == bundled / "tiny-lol-semi10"
    with pytest.raises(WeightsNotFoundError, match="does not exist") as mistyped:
        resolve_weights(MODEL, "tiny-lol-semi99")
    assert "did you mean --weights tiny-lol-semi10?" in mistyped.value.hint
    with pytest.raises(WeightsNotFoundError) as unlike:
        resolve_weights(MODEL, "something-else")
    assert "did you mean" not in unlike.value.hint


def test_the_cli_starts_without_huggingface_hub():
    """huggingface_hub and its HTTP stack load on first download only: local weights never need
    them, and they are a share of every command's start-up (issue 15's whole-command timing)."""
    import subprocess
    import sys

    code = "import sys, lowlight_cli.cli.app; print('huggingface_hub' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", result.stderr
