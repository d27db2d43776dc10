"""PyTorch vs onnxruntime on the CPU: megapixels per second of each exportable model.

    python benchmarks/onnx_speed.py                       # every exportable model, CPU
    python benchmarks/onnx_speed.py --models crnet-s --size 1200 1600

Each model (random initialisation: speed does not depend on the weights) is exported to ONNX with
``lowlight_cli.export`` (parity-checked, fp32 and fp16) and run through the same ``Enhancer`` as
the PyTorch model, whole image (no tiles), best of ``--repeats``. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enhance_speed import time_enhance  # noqa: E402
from machine import describe_machine  # noqa: E402

from lowlight_cli.export import export_onnx  # noqa: E402
from lowlight_cli.inference import Enhancer, InferenceConfig  # noqa: E402
from lowlight_cli.inference.onnx_backend import CPU_PROVIDER, OnnxModel  # noqa: E402
from lowlight_cli.models import create_model, list_models, model_info  # noqa: E402

# the paper-size CRNet runs ~0.01 MP/s on 2 CPU cores: a small image keeps the run in minutes
CPU_SIZES = {"crnet": (256, 384)}
DEFAULT_SIZE = (768, 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=[n for n in list_models() if model_info(n).exportable])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="image size (default per model)")
    args = parser.parse_args()

    import onnxruntime

    print(f"machine: {describe_machine()}; onnxruntime {onnxruntime.__version__} ({CPU_PROVIDER}, threads {args.threads or 'default'})")
    print("| model | image | PyTorch MP/s | onnxruntime fp32 MP/s | onnxruntime fp16 MP/s | fp32 speed-up |")
    print("|---|---|---|---|---|---|")
    config = InferenceConfig(device="cpu", tile=0)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = create_model(name, pretrained=False)
            h, w = args.size or CPU_SIZES.get(name, DEFAULT_SIZE)
            image = (rng.random((h, w, 3), dtype=np.float32) * 0.2).astype(np.float32)
            rates = [h * w / 1e6 / time_enhance(Enhancer(model, config), image, args.repeats)[1]]
            for fp16 in (False, True):
                path = Path(tmp) / f"{name}-{fp16}.onnx"
                export_onnx(model, path, fp16=fp16)
                exported = OnnxModel(path, providers=[CPU_PROVIDER], threads=args.threads)
                rates.append(h * w / 1e6 / time_enhance(Enhancer(exported, config), image, args.repeats)[1])
            print(f"| {name} | {w}x{h} | {rates[0]:.3f} | {rates[1]:.3f} | {rates[2]:.3f} | {rates[1] / rates[0]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
