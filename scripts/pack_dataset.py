"""Split a dataset folder into tar parts small enough to travel to a remote GPU machine.

    python scripts/pack_dataset.py ../shared/data/LOL transfer/LOL --part-mib 48 --labeled-only
    # on the remote machine, after each part has arrived:
    python scripts/pack_dataset.py --unpack transfer/LOL data/LOL

Files are stored as they are (LOL's training images are already lossless WebP), grouped so that a
low image and its reference land in the same part; each part is written atomically and comes with a
manifest (``parts.json``: file -> part, size, sha256) that ``--unpack`` checks. ``--labeled-only``
keeps the pairs that have a reference plus the test set (what a fully supervised run reads).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tarfile
from pathlib import Path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_groups(root: Path, labeled_only: bool) -> list[list[Path]]:
    """Files of ``root`` grouped by (split, stem): a low image and its reference stay together."""
    groups: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if len(rel.parts) >= 3 and rel.parts[-2] in ("low", "high"):
            key = ("/".join(rel.parts[:-2]), path.stem)
        else:
            key = ("", str(rel))  # READMEs, manifests
        groups.setdefault(key, []).append(path)
    if labeled_only:
        groups = {k: v for k, v in groups.items() if k[0] == "" or any(p.parent.name == "high" for p in v)}
    return list(groups.values())


def _member_bytes(path: Path, root: Path) -> int:
    """What ``path`` adds to a tar archive: its 512-byte header (a long name, past 100 characters,
    adds an extended header of at most 1536 bytes more) and its data padded to 512-byte blocks."""
    name_header = 1536 if len(path.relative_to(root).as_posix()) > 100 else 0
    return 512 + name_header + -(-path.stat().st_size // 512) * 512


def _archive_bytes(content: int) -> int:
    """The size of a tar file whose members take ``content`` bytes: two 512-byte end blocks, the
    whole padded to tarfile's 10240-byte records."""
    return -(-(content + 1024) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def pack(root: Path, out: Path, part_bytes: int, labeled_only: bool) -> dict:
    """Write the parts; each is at most ``part_bytes`` as a file, unless one group alone is larger."""
    out.mkdir(parents=True, exist_ok=True)
    parts: list[list[Path]] = [[]]
    sizes = [0]  # tar bytes of each part's members
    for group in dataset_groups(root, labeled_only):
        size = sum(_member_bytes(p, root) for p in group)
        if parts[-1] and _archive_bytes(sizes[-1] + size) > part_bytes:
            parts.append([])
            sizes.append(0)
        parts[-1].extend(group)
        sizes[-1] += size
    manifest: dict = {"root": root.name, "parts": [], "files": {}}
    for index, files in enumerate(parts):
        name = f"part{index:02d}.tar"
        tmp = out / (name + ".tmp")
        with tarfile.open(tmp, "w") as tar:
            for path in files:
                rel = path.relative_to(root).as_posix()
                tar.add(path, arcname=rel)
                manifest["files"][rel] = {"part": name, "size": path.stat().st_size, "sha256": _sha256(path)}
        os.replace(tmp, out / name)
        manifest["parts"].append({"name": name, "bytes": (out / name).stat().st_size, "files": len(files)})
    (out / "parts.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def unpack(source: Path, target: Path) -> int:
    """Extract every part present under ``source`` into ``target``; verify sizes and hashes."""
    manifest = json.loads((source / "parts.json").read_text())
    target.mkdir(parents=True, exist_ok=True)
    for part in manifest["parts"]:
        tar_path = source / part["name"]
        if tar_path.is_file():
            with tarfile.open(tar_path) as tar:
                tar.extractall(target, filter="data")
    missing = [rel for rel in manifest["files"] if not (target / rel).is_file()]
    bad = [rel for rel, meta in manifest["files"].items()
           if rel not in missing and _sha256(target / rel) != meta["sha256"]]
    if bad:
        raise SystemExit(f"{len(bad)} files differ from the manifest, e.g. {bad[0]}")
    return len(missing)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--part-mib", type=float, default=48.0)
    parser.add_argument("--labeled-only", action="store_true")
    parser.add_argument("--unpack", action="store_true")
    args = parser.parse_args(argv)
    if args.unpack:
        missing = unpack(args.source, args.target)
        print(f"unpacked into {args.target}; {missing} files still missing (parts not yet here)")
        return
    if not args.source.is_dir():
        sys.exit(f"{args.source} is not a folder")
    manifest = pack(args.source, args.target, int(args.part_mib * 2**20), args.labeled_only)
    for part in manifest["parts"]:
        print(f"{part['name']}: {part['files']} files, {part['bytes'] / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
