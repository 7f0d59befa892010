"""`keypoint-warp`: the no-network baseline of SPEC §7 (a model with no weights).

Each frame is the reference (with K > 1: the one whose pose is closest to the target's) warped by the
keypoint flow prior (`models.prior`) over the reference's filled
background, with the composite mask fixed to the warped person mask (`models.composite`): what the prior
alone achieves. Every trained model must beat it on the same inputs, and it needs no download. It has the
`Generator` interface the pipeline, the evaluation and `fsv2v info` use (`encode_references`, `forward`
-> `GeneratorOutput`, `components`), so it is selected like any model (`--model keypoint-warp`).
"""

from __future__ import annotations

import torch
from torch import nn

from fewshotv2v.config import ModelConfig
from fewshotv2v.errors import ConfigError, InputError
from fewshotv2v.models.generator import (
    GeneratorOutput,
    ReferenceState,
    explained_at,
    keypoint_prior,
    prior_state,
    reference_person,
    warp_reference,
)
from fewshotv2v.models.prior import closest_reference


class KeypointWarp(nn.Module):
    """The prior + composite only: out = warp_base(ref, prior flow) (no W, no H)."""

    reads_label = False  # only the keypoints and the label's shape: the pipeline need not draw the maps

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.architecture != "keypoint-warp":
            raise ConfigError(f"KeypointWarp needs architecture keypoint-warp, got {config.architecture!r}")
        self.config = config
        self.generated_shapes: dict = {}  # nothing is generated (for `models.profile`)
        # A buffer gives `.to(device)` / `next(parameters or buffers)` a device to report.
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)

    def components(self) -> dict[str, nn.Module]:
        return {}

    def encode_references(self, ref_images, ref_labels, ref_keypoints=None) -> ReferenceState:
        if ref_keypoints is None:
            raise InputError("keypoint-warp needs the reference keypoints (ref_keypoints=)")
        return prior_state(self.config, ref_images, ref_labels, ref_keypoints)

    def forward(self, label, refs: ReferenceState, prev_image=None, prev_label=None, *, keypoints=None,
                ref_transform=None) -> GeneratorOutput:  # fmt: skip
        if keypoints is None:
            raise InputError("keypoint-warp needs the target keypoints (keypoints=)")
        b = label.shape[0]
        rows = torch.arange(b, device=label.device)
        ref_index = closest_reference(refs.ref_keypoints, keypoints)  # K > 1: the most similar pose
        transform = ref_transform[rows, ref_index] if ref_transform is not None else None
        person = reference_person(self.config, refs, rows, ref_index)
        explained = explained_at(refs, rows, ref_index)
        flow, coverage = keypoint_prior(
            self.config, refs.ref_keypoints[rows, ref_index], keypoints, transform, person, explained
        )
        image = warp_reference(self.config, refs, rows, ref_index, flow, transform, coverage)
        trust_all = torch.zeros_like(image[:, :1])  # mask_ref = 1 - trust: the warp is trusted everywhere
        return GeneratorOutput(
            image=image, warped_ref=image, mask_ref=trust_all, flow_ref=flow, ref_index=ref_index,
            raw_image=torch.zeros_like(image),  # no correction: the composite is the warp
            coverage=coverage,
        )  # fmt: skip


__all__ = ["KeypointWarp"]
