"""The one way the front ends (`fsv2v synth`, `fsv2v app`) get a `Pipeline` for their settings.

Both call this and then `Pipeline.synthesize`, so the command line and the web page run the same code:
the same model resolution (folder, packaged, downloaded), device, dtype, keypoint backend and mode check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fewshotv2v.pipeline import Pipeline
    from fewshotv2v.settings import Settings


def load_pipeline(
    settings: Settings,
    *,
    model: str | None = None,
    backend: str | None = None,
    mode: str | None = None,
    **options,
) -> Pipeline:
    """A `Pipeline` for `model` (default `settings.model`, else the model shipped for `mode`) on
    `settings.device` / `settings.dtype`; `options` go to the `Pipeline` (size, keep_centered, ...).

    backend: a detector name, default `settings.backend`; not validated through `Settings` because plug-in
    backends registered with `register_backend` have names of their own. mode: "pose" / "face", checked
    against the model's (a `ConfigError` on a mismatch); None accepts the model's mode.
    """
    from fewshotv2v.pipeline import Pipeline
    from fewshotv2v.registry import model_for_mode

    pipe = Pipeline.from_pretrained(
        model_for_mode(model or settings.model, mode),
        device=settings.device,
        dtype=settings.dtype,
        backend=backend or settings.backend,
        settings=settings,
        **{"producer": settings.producer, **options},
    )
    if mode is not None:
        pipe.check_mode(mode)
    return pipe
