"""Sweep guided-filter post-processing of the default photo model's outputs (how session 21 chose
the chroma step, docs/crnet-training.md "Chroma smoothing").

    python scripts/guided_filter_sweep.py --grid chroma      # radius x eps of the chroma filter
    python scripts/guided_filter_sweep.py --grid variants    # half-resolution, fast guided filter, no gate
    python scripts/guided_filter_sweep.py --grid luma --niqe # the luma filter measured and not adopted
    python scripts/guided_filter_sweep.py --gates            # in the model: which brightening gates the chroma step

The prototype works on the 8-bit outputs of ``--weights`` (default: the bundled default checkpoint
*without* its chroma step, i.e. as trained) on four sets: ``lights``, ``noise`` and ``examples`` of
``scripts/photo_eval.py`` (PSNR / SSIM against the clean photos) and ``val``, the 22 validation
pairs of the stages' split (``make_split`` with seed 0 and 15 held-out pairs, what every bundled
LOL run used). The LOL-v1 test set is never scored here. Filters run with OpenCV on float32 images:
chroma is R - Y and B - Y (BT.601 luma Y), the guided filter is He et al.'s with box windows
(reflected borders), and the gate is estimated from the input and output luma, ``min(1, 2 (1 -
(Y_in + 1/255) / (Y_out + 1/255)))`` blurred with sigma 2 (gate ``double``; ``linear`` is the same
without the factor 2, which the chroma grid and its variants ran with), standing in for the model's own brightening, which the library's step
(``lowlight_cli.models.chroma``) uses. One thread; about a minute per grid row on the session's
Intel Xeon once the outputs are cached (``--cache``).

``--gates`` runs inside the model instead: the library's own step
(:func:`lowlight_cli.models.chroma.smooth_chroma`, radius 2, ``eps`` 1e-4, chroma only) on the
output of the model's refinement stage, blended in by gates made from the model's own brightening
``b = 1 - 1/g`` of the green channel (what the bundled model uses): ``b``, ``sqrt(b)``, ``min(1, 2
b)`` (the bundled gate) and 1 everywhere; no post-processing is estimated. About three minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_eval import SHARED, _pair_scores, build_sets  # noqa: E402

from lowlight_cli.data.pairs import find_pairs, load_pairs  # noqa: E402
from lowlight_cli.data.splits import make_split  # noqa: E402
from lowlight_cli.inference import Enhancer, InferenceConfig  # noqa: E402
from lowlight_cli.io import from_float, to_float  # noqa: E402
from lowlight_cli.metrics import niqe  # noqa: E402
from lowlight_cli.models import load_checkpoint  # noqa: E402
from lowlight_cli.inference.padding import pad_to_multiple  # noqa: E402
from lowlight_cli.models.checkpoint import read_config  # noqa: E402
from lowlight_cli.models.chroma import smooth_chroma  # noqa: E402
from lowlight_cli.models.crnet import CHROMA_FULL_BRIGHTENING, REFINE_CEILING  # noqa: E402

KR, KG, KB = 0.299, 0.587, 0.114


def guided(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter of ``src`` by ``guide`` (single channels, float32)."""
    def box(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)
    mean_i, mean_p = box(guide), box(src)
    a = (box(guide * src) - mean_i * mean_p) / (box(guide * guide) - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def fast_guided(guide: np.ndarray, src: np.ndarray, radius: int, eps: float, scale: int) -> np.ndarray:
    """He and Sun's fast guided filter: coefficients at ``1/scale``, applied to the full-size guide."""
    h, w = guide.shape
    def small(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a, (w // scale, h // scale), interpolation=cv2.INTER_AREA)
    def box(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)
    gs, ss = small(guide), small(src)
    mean_i, mean_p = box(gs), box(ss)
    a = (box(gs * ss) - mean_i * mean_p) / (box(gs * gs) - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    def up(x: np.ndarray) -> np.ndarray:
        return cv2.resize(box(x), (w, h), interpolation=cv2.INTER_LINEAR)
    return up(a) * guide + up(b)


def apply(low: np.ndarray, out: np.ndarray, *, chroma: str, radius: int, eps: float, gate: str,
          luma_radius: int = 0, luma_eps: float = 0.0) -> np.ndarray:
    """One post-processing setting on an 8-bit output; 8-bit result."""
    y = out.astype(np.float32) / 255
    x = low.astype(np.float32) / 255
    luma = KR * y[..., 0] + KG * y[..., 1] + KB * y[..., 2]
    cb, cr = y[..., 2] - luma, y[..., 0] - luma
    if chroma == "guided":
        cb2, cr2 = guided(luma, cb, radius, eps), guided(luma, cr, radius, eps)
    elif chroma == "fast":
        cb2, cr2 = fast_guided(luma, cb, radius, eps, 2), fast_guided(luma, cr, radius, eps, 2)
    elif chroma == "half":  # chroma itself filtered at half resolution and upsampled
        h, w = luma.shape
        def half(a: np.ndarray) -> np.ndarray:
            return cv2.resize(a, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        def up(a: np.ndarray) -> np.ndarray:
            return cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
        cb2, cr2 = up(guided(half(luma), half(cb), radius, eps)), up(guided(half(luma), half(cr), radius, eps))
    elif chroma == "gauss":
        cb2, cr2 = cv2.GaussianBlur(cb, (0, 0), radius), cv2.GaussianBlur(cr, (0, 0), radius)
    else:
        cb2, cr2 = cb, cr
    if gate == "none":
        g = np.ones_like(luma)
    else:
        luma_in = KR * x[..., 0] + KG * x[..., 1] + KB * x[..., 2]
        factor = 2.0 if gate == "double" else 1.0
        g = cv2.GaussianBlur(np.clip(factor * (1 - (luma_in + 1 / 255) / (luma + 1 / 255)), 0, 1), (0, 0), 2)
    cb2, cr2 = cb + g * (cb2 - cb), cr + g * (cr2 - cr)
    luma2 = luma if luma_radius == 0 else luma + g * (guided(luma, luma, luma_radius, luma_eps) - luma)
    red, blue = luma2 + cr2, luma2 + cb2
    green = (luma2 - KR * red - KB * blue) / KG
    return from_float(np.clip(np.stack([red, green, blue], -1), 0, 1).astype(np.float32), 8)


GRIDS = {
    # as run in session 21: the radius x eps grid and the variants with the plain estimated gate
    "chroma": [dict(chroma="none", radius=0, eps=0.0, gate="linear")]
    + [dict(chroma="guided", radius=r, eps=e, gate="linear") for r in (1, 2, 3, 4, 6) for e in (1e-5, 1e-4, 1e-3, 3e-3)],
    "variants": [dict(chroma="guided", radius=2, eps=1e-4, gate="linear"), dict(chroma="guided", radius=2, eps=1e-4, gate="none"),
                 dict(chroma="guided", radius=2, eps=1e-4, gate="double"), dict(chroma="half", radius=1, eps=1e-4, gate="linear"),
                 dict(chroma="fast", radius=1, eps=1e-4, gate="linear"), dict(chroma="gauss", radius=2, eps=0.0, gate="linear")],
    "luma": [dict(chroma="guided", radius=2, eps=1e-4, gate="double")]
    + [dict(chroma="guided", radius=2, eps=1e-4, gate="double", luma_radius=r, luma_eps=e)
       for r, e in ((1, 1e-3), (1, 3e-3), (2, 1e-3), (1, 3e-4), (2, 3e-4), (2, 1e-4))],
}


SETS = ("lights", "noise", "examples", "val")


def scored_images() -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """``(set, name, input, reference)`` of the four sets of :data:`SETS`: ``val`` holds the 22
    validation pairs of the stages' split (seed 0, 15 held out, as every bundled LOL run)."""
    sets = build_sets(SHARED, only={"lights", "noise"})
    pairs = load_pairs(find_pairs(SHARED / "LOL", "train"))
    held = set(make_split(pairs, labeled_frac=1.0, val_count=15, seed=0).validation)
    sets["val"] = [(p.name, p.low, p.high) for p in pairs if p.name in held]
    return [(set_name, name, low, ref) for set_name in SETS for name, low, ref in sets[set_name]]


def score_cells(scores: dict[str, list[tuple[float, float]]]) -> list[str]:
    """``PSNR / SSIM`` means of each set of :data:`SETS`."""
    return [f"{np.mean([p for p, _ in scores[n]]):.2f} / {np.mean([s for _, s in scores[n]]):.4f}" for n in SETS]


def model_outputs(weights: Path, cache: Path | None) -> list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]]:
    """``(set, name, input, reference, output)`` for the four sets, from ``cache`` when it exists."""
    key = hashlib.sha256((weights / "model.safetensors").read_bytes()).hexdigest()
    if cache is not None and cache.is_file():
        stored = np.load(cache, allow_pickle=True)
        if str(stored["weights_sha256"]) != key:
            raise SystemExit(f"{cache} holds the outputs of other weights: delete it or choose another --cache")
        return stored["items"].tolist()
    model = load_checkpoint(weights)
    enhancer = Enhancer(model, InferenceConfig(device="cpu", tile=0))
    items = [(set_name, name, low, ref, from_float(enhancer.enhance(to_float(low)), 8)) for set_name, name, low, ref in scored_images()]
    if cache is not None:
        np.savez(cache, items=np.array(items, dtype=object), weights_sha256=key)
    return items


GATES = {
    "b": lambda b: b,
    "sqrt(b)": torch.sqrt,
    "min(1, 2b) (bundled)": lambda b: (b / CHROMA_FULL_BRIGHTENING).clamp(max=1.0),
    "1 everywhere": torch.ones_like,
}


def gate_rows(weights: Path) -> list[tuple[str, str, np.ndarray, dict[str, np.ndarray]]]:
    """``(set, name, reference, {gate: 8-bit output})``: the model as trained, its chroma step
    added after the refinement stage with each gate of :data:`GATES` (the model's own brightening,
    captured from the stage's input)."""
    model = load_checkpoint(weights).eval()
    captured: dict[str, torch.Tensor] = {}

    def keep(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        captured["brightening"], captured["refined"] = inputs[1][:, 1:2], output

    model.refine.register_forward_hook(keep)
    rows = []
    with torch.inference_mode():
        for set_name, name, low, ref in scored_images():
            x = pad_to_multiple(torch.from_numpy(to_float(low)).permute(2, 0, 1)[None], model.info.input_multiple)
            model(x)
            height, width = low.shape[:2]
            outputs = {}
            for label, gate in GATES.items():
                y = smooth_chroma(captured["refined"], gate(captured["brightening"]), 2, 1e-4, REFINE_CEILING)
                outputs[label] = from_float(y.clamp(0.0, 1.0)[0, :, :height, :width].permute(1, 2, 0).numpy(), 8)
            rows.append((set_name, name, ref, outputs))
    return rows


def print_gates(weights: Path) -> None:
    """The ``--gates`` table: PSNR / SSIM per set for each gate."""
    rows = gate_rows(weights)
    print("| gate | " + " | ".join(f"{n} PSNR / SSIM" for n in SETS) + " |")
    print("|---|" + "---|" * len(SETS))
    for label in GATES:
        scores: dict[str, list[tuple[float, float]]] = {n: [] for n in SETS}
        for set_name, _, ref, outputs in rows:
            scores[set_name].append(_pair_scores(outputs[label], ref))
        print(f"| {label} | " + " | ".join(score_cells(scores)) + " |", flush=True)


def as_trained(weights: Path, folder: Path) -> Path:
    """A copy of the checkpoint folder ``weights`` whose kwargs lack the chroma step (the model as trained)."""
    import json
    import shutil

    shutil.copytree(weights, folder, dirs_exist_ok=True)
    config = read_config(folder)
    config["kwargs"] = {k: v for k, v in config.get("kwargs", {}).items() if not k.startswith("chroma_")}
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="chroma")
    parser.add_argument("--weights", type=Path, default=Path(__file__).resolve().parents[1] / "weights" / "crnet-curve-dn-lol")
    parser.add_argument("--cache", type=Path, default=None, help="an .npz to keep the model's outputs in between runs")
    parser.add_argument("--niqe", action="store_true", help="also NIQE of the outputs of lights and noise")
    parser.add_argument("--gates", action="store_true", help="in the model: the chroma step under four brightening gates")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    import tempfile

    if args.gates:
        with tempfile.TemporaryDirectory() as tmp:
            print_gates(as_trained(args.weights, Path(tmp) / "ckpt"))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        items = model_outputs(as_trained(args.weights, Path(tmp) / "ckpt"), args.cache)
    print("| setting | " + " | ".join(f"{n} PSNR / SSIM" for n in SETS) + (" | lights NIQE | noise NIQE |" if args.niqe else " |"))
    print("|---|" + "---|" * (len(SETS) + (2 if args.niqe else 0)))
    for setting in GRIDS[args.grid]:
        scores: dict[str, list[tuple[float, float]]] = {n: [] for n in SETS}
        quality: dict[str, list[float]] = {"lights": [], "noise": []}
        for set_name, _, low, ref, out in items:
            filtered = apply(low, out, **setting)
            scores[set_name].append(_pair_scores(filtered, ref))
            if args.niqe and set_name in quality:
                quality[set_name].append(float(niqe(filtered)))
        cells = score_cells(scores)
        if args.niqe:
            cells += [f"{np.mean(quality['lights']):.2f}", f"{np.mean(quality['noise']):.2f}"]
        label = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in setting.items())
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
