"""Keypoint detectors ("backends") behind one small registry.

``get_backend("mediapipe")`` (extra ``[pose]``, single person, with a person mask) or
``get_backend("dwpose", det_model=..., pose_model=...)`` (extra ``[dwpose]``, multi-person). Tests and
plug-ins add their own with ``register_backend(name, factory)``. Backend modules are imported only when
requested, so optional dependencies are never imported by accident.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fewshotv2v.errors import ConfigError
from fewshotv2v.semantics.backends.base import Backend, Detection


def _mediapipe(**kw: Any) -> Backend:
    from fewshotv2v.semantics.backends.mediapipe_backend import MediaPipeBackend

    return MediaPipeBackend(**kw)


def _dwpose(**kw: Any) -> Backend:
    from fewshotv2v.semantics.backends.dwpose import DWPoseBackend

    return DWPoseBackend(**kw)


_BUILTIN: dict[str, Callable[..., Backend]] = {"mediapipe": _mediapipe, "dwpose": _dwpose}
_REGISTRY: dict[str, Callable[..., Backend]] = dict(_BUILTIN)


def register_backend(name: str, factory: Callable[..., Backend], *, overwrite: bool = True) -> None:
    """Make ``get_backend(name, **kw)`` call ``factory(**kw)``."""
    if not overwrite and name in _REGISTRY:
        raise ConfigError(f"keypoint backend {name!r} is already registered")
    _REGISTRY[name] = factory


def unregister_backend(name: str) -> None:
    """Remove a registered backend (no error if absent)."""
    _REGISTRY.pop(name, None)


def is_builtin(name: str) -> bool:
    """Whether `name` is one of this package's backends, unreplaced (so any process can make it, e.g. a
    producer process that did not see this one's `register_backend` calls)."""
    return name in _BUILTIN and _REGISTRY.get(name) is _BUILTIN[name]


def available_backends() -> list[str]:
    return sorted(_REGISTRY)


def get_backend(name: str, **kw: Any) -> Backend:
    """Instantiate a keypoint backend by name (``ConfigError`` listing the known names otherwise)."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ConfigError(f"unknown keypoint backend {name!r}; available: {', '.join(available_backends())}")
    return factory(**kw)


__all__ = [
    "Backend",
    "Detection",
    "available_backends",
    "get_backend",
    "is_builtin",
    "register_backend",
    "unregister_backend",
]
