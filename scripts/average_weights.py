"""Average checkpoints of one architecture into a new checkpoint folder (a uniform "model soup").

    python scripts/average_weights.py weights/pie-lol runs/pie-lol-tv/last -o /tmp/soup-a
    python scripts/validate_run.py runs/pie-lol-tv weights/pie-lol /tmp/soup-a

Every input must be a checkpoint folder (``config.json`` + ``model.safetensors``) with the same
architecture and the same tensor names and shapes; the average is taken in float64 and stored in
each tensor's own dtype. The output gets the first input's ``config.json``, with the averaged
folders recorded under ``provenance.averaged_from`` and the new file's sha256.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lowlight_cli.errors import CheckpointError
from lowlight_cli.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_state_dict_file, read_config, save_state_dict


def average_state(states: list[dict]) -> dict:
    """The element-wise mean of state dicts with the same keys and shapes."""
    keys = set(states[0])
    for state in states[1:]:
        if set(state) != keys:
            raise SystemExit(f"the checkpoints hold different tensors: {sorted(keys ^ set(state))[:5]}")
    averaged = {}
    for key in states[0]:
        shapes = {tuple(state[key].shape) for state in states}
        if len(shapes) > 1:
            raise SystemExit(f"{key}: shapes differ between checkpoints {sorted(shapes)}")
        total = sum(state[key].double() for state in states)
        averaged[key] = (total / len(states)).to(states[0][key].dtype)
    return averaged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", type=Path, nargs="+", help="checkpoint folders, two or more")
    parser.add_argument("-o", "--out", type=Path, required=True, help="the new checkpoint folder")
    args = parser.parse_args(argv)
    if len(args.checkpoints) < 2:
        parser.error("give two or more checkpoint folders")
    try:
        configs = [read_config(folder) for folder in args.checkpoints]
        states = [load_state_dict_file(folder / WEIGHTS_NAME) for folder in args.checkpoints]
    except CheckpointError as exc:
        parser.error(str(exc))
    if len({(c.get("architecture"), json.dumps(c.get("kwargs", {}), sort_keys=True)) for c in configs}) > 1:
        parser.error("the checkpoints are of different architectures or settings")
    state = average_state(states)
    digest = save_state_dict(state, args.out / WEIGHTS_NAME, metadata={"architecture": configs[0]["architecture"]})
    config = configs[0]
    config.setdefault("provenance", {})["averaged_from"] = [str(folder) for folder in args.checkpoints]
    config["sha256"] = {WEIGHTS_NAME: digest}
    (args.out / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    print(f"{args.out}: the average of {len(args.checkpoints)} checkpoints ({len(state)} tensors)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
