"""The model registry: the manifest of every downloadable model (`registry.json`, shipped in the package).

Each entry names a Hub repo, a pinned 40-hex commit, and a sha256 (and size, when known) per file, plus
the licence and what it is for. `$FSV2V_REGISTRY` may name a replacement file (same format): for tests
and mirrors.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from fewshotv2v.errors import ConfigError

REGISTRY_FILE = Path(__file__).with_name("registry.json")
# The models shipped in the package that `fsv2v synth` uses for a mode when no model is named: the best
# measured on real photos (docs/real-photos.md). The keypoint prior alone (no weights) is still that: the
# trained `pose-lite` / `face-lite` beat it on held-out synthetic people, not on real photos.
DEFAULT_MODELS = {"pose": "keypoint-warp", "face": "keypoint-warp-face"}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class RegistryFile:
    filename: str
    sha256: str | None = None
    size: int | None = None  # bytes; None when not known


@dataclass(frozen=True)
class RegistryEntry:
    """One named model: where its files live on the Hub (or that it ships in the package)."""

    name: str
    kind: str = "model"  # model | backbone | keypoints
    repo_id: str | None = None
    revision: str | None = None  # pinned 40-hex commit
    files: tuple[RegistryFile, ...] = ()
    license: str | None = None
    description: str = ""
    mode: str | None = None
    published: bool = True
    packaged: bool = False

    @property
    def size(self) -> int | None:
        """Total bytes, or None if any file's size is unknown (or there are no files)."""
        sizes = [f.size for f in self.files]
        return sum(sizes) if sizes and all(s is not None for s in sizes) else None  # type: ignore[misc]


def load_registry(path: str | Path | None = None) -> dict[str, RegistryEntry]:
    """Read the registry: `path`, else `$FSV2V_REGISTRY`, else the manifest shipped in the package."""
    path = Path(path or os.environ.get("FSV2V_REGISTRY") or REGISTRY_FILE).expanduser()
    try:
        data = json.loads(path.read_text())
        models = data["models"]
        entries = {}
        for name, raw in models.items():
            raw = dict(raw)
            files = tuple(RegistryFile(**f) for f in raw.pop("files", []))
            entry = RegistryEntry(name=name, files=files, **raw)
            if entry.published and not entry.packaged and not (entry.repo_id and entry.files):
                raise ValueError(f"entry {name!r} has no repo_id or files")
            if entry.revision is not None and not _COMMIT.match(entry.revision):
                raise ValueError(f"entry {name!r}: revision must be a 40-hex commit")
            entries[name] = entry
        return entries
    except FileNotFoundError as exc:
        raise ConfigError(f"model registry not found: {path}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"invalid model registry {path}: {exc}") from exc


def _as_registry(registry: dict[str, RegistryEntry] | str | Path | None) -> dict[str, RegistryEntry]:
    return registry if isinstance(registry, dict) else load_registry(registry)


def model_for_mode(name: str | None, mode: str | None, registry=None) -> str:
    """The model to load: `name`, or the shipped one for `mode` when no name is given; a name whose
    registry entry is for another mode resolves to its `NAME-MODE` variant when there is one
    (`keypoint-warp` + face -> `keypoint-warp-face`)."""
    if not name:
        return DEFAULT_MODELS.get(mode or "pose", DEFAULT_MODELS["pose"])
    if mode is None:
        return name
    entries = _as_registry(registry)
    entry = entries.get(name)
    variant = f"{name}-{mode}"
    if entry is not None and entry.mode not in (None, mode) and variant in entries:
        return variant
    return name
