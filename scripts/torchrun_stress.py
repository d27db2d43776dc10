"""Run the torchrun tests again and again, optionally under CPU load, and report any hang.

    python scripts/torchrun_stress.py --rounds 8 --load 2     # what session 20 ran after the fix

Each round runs ``pytest tests/test_training.py -k torchrun`` (two tests, each a two-process
torchrun job; the tests fail on their own after 300 s). ``--load N`` keeps N busy-looping
processes running meanwhile, which is what made the gloo teardown deadlock of session 20 show up
(one hang in about eight rounds before the fix in ``lowlight_cli/training/distributed.py``). A round
that outlives ``--timeout`` is killed and counted as a hang. Exit status 1 if any round failed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _spin() -> None:
    while True:
        pass


TORCHRUN_TESTS = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_training.py", "-k", "torchrun"]


def run_round(timeout: float, cmd: list[str] = TORCHRUN_TESTS) -> tuple[str, float]:
    """One run of ``cmd`` (the torchrun tests): ('passed' | 'failed' | 'hung', seconds)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # pytest and the torchrun processes under it
        proc.communicate()
        return "hung", time.perf_counter() - start
    except BaseException:  # Ctrl-C reaches only this process (the round runs in its own session)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stdout.write(out.decode(errors="replace")[-3000:])
        return "failed", seconds
    return "passed", seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--load", type=int, default=0, help="busy-looping processes kept running meanwhile")
    parser.add_argument("--timeout", type=float, default=700.0, help="seconds before a round counts as hung")
    args = parser.parse_args()
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.load)]
    for spinner in spinners:
        spinner.start()
    outcomes: list[str] = []
    try:
        for index in range(1, args.rounds + 1):
            outcome, seconds = run_round(args.timeout)
            outcomes.append(outcome)
            print(f"round {index}/{args.rounds}: {outcome} in {seconds:.0f} s", flush=True)
    finally:
        for spinner in spinners:
            spinner.terminate()
    print(f"{outcomes.count('passed')} passed, {outcomes.count('failed')} failed, {outcomes.count('hung')} hung "
          f"of {len(outcomes)} rounds, {args.load} busy process(es) beside them")
    return 0 if all(o == "passed" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
