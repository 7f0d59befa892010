"""The few-shot vid2vid generator (Wang et al. 2019; SPEC §2).

Per output frame t::

    refs (e_k, s_ek) --E_F--> bottleneck (input of H) + pooled q_l --E_P--> generated weights
                       (K > 1: E_A attention merges the K references inside E_F, per frame)
    s_t --label embedder (finest decoder convs generated)--> maps m_0 .. m_L
    W(s_t, s_ref, e_ref) and W(s_t, s_{t-1}, x_{t-1}) (one batched pass) -> flows, masks -> warps
    H: SPADE ResBlocks up_L .. up_0 (x2 upsampling between) -> lrelu -> conv3x3 -> tanh
    pose/face: warped images enter H through small UNets as extra SPADE maps of up_0, up_1;
    street: linear matting of H's output with the warped images.

SPEC §7 options: `flow_prior="keypoints"` computes an analytic flow from the reference and target
keypoints (`models.prior`) that W refines; `composite="warp"` makes the frame
m * (reference texture warped by the flow over the filled background) + (1 - m) * H's output
(`models.composite`), so the reference's own pixels carry into every frame.

`encode_references` runs once per video; with K = 1 its `ReferenceState` already holds the bottleneck
and the generated weights, so each frame costs only the label embedder, W, the UNets and H.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fewshotv2v.config import ModelConfig
from fewshotv2v.errors import InputError
from fewshotv2v.models import composite as C
from fewshotv2v.models.flow import FlowNetwork, warp
from fewshotv2v.models.layers import ConvBlock, SPADEResBlock, batched_conv2d, lrelu, upsample2
from fewshotv2v.models.prior import closest_reference
from fewshotv2v.models.reference_encoder import ReferenceAttention, ReferenceEncoder
from fewshotv2v.models.weight_generator import GeneratedShapes, GeneratedWeights, WeightGenerator
from fewshotv2v.models.weights import WEIGHTS_NAME, load_weights, read_config, save_pretrained


@dataclass
class ReferenceState:
    """Reference encodings for one video (B samples, K references each).

    K = 1: `bottleneck` (B, ch[L], h, w) and `weights` (E_P output) are final and reused every frame.
    K > 1: `feat_img` / `feat_lab` (B, K, ch[a], H/2^a, W/2^a) and attention `keys` (B, 1, K*N_a, d);
    the attention and the rest of E_F + E_P run per frame.
    """

    ref_images: torch.Tensor  # (B, K, 3, H, W)
    ref_labels: torch.Tensor  # (B, K, C, H, W)
    ref_keypoints: torch.Tensor | None = None  # (B, K, 137, 3) crop pixels (flow prior)
    backgrounds: torch.Tensor | None = None  # (B, K, 3, H, W) references with the person filled in
    explained: torch.Tensor | None = None  # (B, K, 1, H, W) where the references' body parts lie (pose prior)
    bottleneck: torch.Tensor | None = None
    weights: GeneratedWeights | None = None
    feat_img: torch.Tensor | None = None
    feat_lab: torch.Tensor | None = None
    keys: torch.Tensor | None = None

    @property
    def num_refs(self) -> int:
        return self.ref_images.shape[1]


@dataclass
class GeneratorOutput:
    """One synthesized frame and the intermediate warps (for the losses). `*_prev` are None on frame 0."""

    image: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    warped_ref: torch.Tensor  # (B, 3, H, W)
    mask_ref: torch.Tensor  # (B, 1, H, W), 1 = warp not trusted
    flow_ref: torch.Tensor  # (B, 2, H, W) pixels
    ref_index: torch.Tensor  # (B,) long: the reference W warped (flow prior: closest pose; else the
    # largest attention mass)
    warped_prev: torch.Tensor | None = None
    mask_prev: torch.Tensor | None = None
    flow_prev: torch.Tensor | None = None
    # H's output before matting (street) or the warp composite (there: the residual over warped_ref)
    raw_image: torch.Tensor | None = None
    coverage: torch.Tensor | None = None  # (B, 1, H, W) the prior's map of the target body (flow prior)


def keypoint_prior(config: ModelConfig, ref_kps, drive_kps, transform=None, ref_mask=None, explained=None):
    """The SPEC §7 prior at the model's size: (flow (B, 2, H, W) target-crop -> reference-crop pixels,
    coverage (B, 1, H, W): where the target's body is, in [0, 1]).

    ref_kps / drive_kps (B, 137, 3) in their own crops' pixels; `transform (B, 3)` = (a, cx, cy) maps
    target-crop to reference-crop pixels (a static background moves by it); `ref_mask (B, 1, H, W)` the
    reference's person mask (limb widths) and `explained (B, 1, H, W)` where its body parts lie
    (`reference_explained`: the rest of the person stays in the coverage). The prior is computed with the
    reference brought into the target crop (T^-1), so "no motion" means "the background stays", then
    composed with T: flow(p) = T(p + f(p)) - p.
    """
    from fewshotv2v.models.prior import prior_flow, reference_crown

    kw = {"border": FACE_BORDER} if config.mode == "face" else {}
    if transform is None:
        if ref_mask is not None:
            kw["ref_mask"] = ref_mask
            kw["ref_explained"] = explained
        flow, coverage = prior_flow(config.mode, ref_kps, drive_kps, config.size, **kw)
        return flow, loosen(coverage)
    a, c = transform[:, :1, None].float(), transform[:, None, 1:].float()  # (B, 1, 1), (B, 1, 2)
    ref_in_target = torch.cat([(ref_kps[..., :2].float() - c) / a, ref_kps[..., 2:].float()], dim=-1)
    camera = C.similarity_flow(transform, config.size)
    if ref_mask is not None:  # the mask too, brought into the target crop (and where its parts lie)
        kw["ref_mask"] = warp(ref_mask.float(), camera)
        kw["ref_explained"] = warp(explained.float(), camera) if explained is not None else None
        if config.mode == "pose":  # the head's top, measured where the whole reference is: its own crop
            kw["ref_crown"] = (reference_crown(ref_kps, ref_mask) - c[:, 0]) / a[:, 0]
    f, coverage = prior_flow(config.mode, ref_in_target, drive_kps, config.size, **kw)  # (B, 2|1, H, W)
    return camera + a[..., None] * f, loosen(coverage)


# Face crops: the border stays still and the head moves inside it (a head in front of a static background;
# the crop pasted back into the photo meets it at the border). "similarity": the border follows the head.
FACE_BORDER = "static"
COVERAGE_MARGIN = 0.02  # of the crop height: hair and loose clothes stick out of the prior's limb radii


def loosen(coverage: torch.Tensor) -> torch.Tensor:
    """The prior's body coverage (B, 1, H, W) grown by `COVERAGE_MARGIN`: it only has to tell the body's
    new place from its old one (where the flow is zero), not trace its outline; the warped person mask
    does that."""
    r = max(1, round(COVERAGE_MARGIN * coverage.shape[-2]))
    return C.grow_mask(coverage, r)


def warp_reference(config: ModelConfig, refs, rows, ref_index, flow, transform=None, coverage=None):
    """The composite's `base` (B, 3, H, W): the chosen reference warped by `flow` over its filled
    background seen through the camera map `transform (B, 3)` (`models.composite`). `coverage`
    (B, 1, H, W): the prior's map of the target body; the warped person mask is kept only there, so
    where the flow leaves the old position of the body (far from every part) the background shows."""
    ref_image = refs.ref_images[rows, ref_index]
    if refs.backgrounds is None:  # face: no person mask, the warp is the base
        return warp(ref_image, flow)
    person = reference_person(config, refs, rows, ref_index)  # (B, 1, H, W)
    background = refs.backgrounds[rows, ref_index]
    if transform is not None:
        background = warp(background, C.similarity_flow(transform, config.size))
    return C.warp_base(ref_image, flow, person, background, coverage)[0]


def reference_person(config: ModelConfig, refs, rows, ref_index):
    """(B, 1, H, W) person mask of the chosen reference (pose with a mask channel), else None."""
    if config.person_channel is None:
        return None
    return refs.ref_labels[rows, ref_index, config.person_channel][:, None]


def reference_explained(config: ModelConfig, ref_labels, ref_keypoints) -> torch.Tensor | None:
    """(B, K, 1, H, W): where each reference's body parts lie (`prior.parts_coverage`, limb widths from its
    person mask), for the pose prior with a person mask; else None. Once per set of references: the prior
    adds the person's other pixels to every frame's coverage."""
    if not config.uses_keypoints or config.person_channel is None or ref_keypoints is None:
        return None
    from fewshotv2v.models.prior import parts_coverage

    person = ref_labels[:, :, config.person_channel : config.person_channel + 1].flatten(0, 1).float()
    covered = parts_coverage(ref_keypoints.flatten(0, 1), config.size, mask=person)
    return covered.unflatten(0, ref_labels.shape[:2])


def explained_at(refs, rows, ref_index):
    """(B, 1, H, W) `refs.explained` of the chosen reference, or None (see `reference_explained`)."""
    return refs.explained[rows, ref_index] if refs.explained is not None else None


def prior_state(config: ModelConfig, ref_images, ref_labels, ref_keypoints) -> ReferenceState:
    """The references' state the keypoint prior and the warp composite need, once per set of references
    (the networks add their encodings to it): keypoints, filled backgrounds, where the body parts lie."""
    state = ReferenceState(ref_images, ref_labels, ref_keypoints=ref_keypoints)
    state.backgrounds = reference_backgrounds(config, ref_images, ref_labels)
    state.explained = reference_explained(config, ref_labels, ref_keypoints)
    return state


def reference_backgrounds(config: ModelConfig, ref_images, ref_labels) -> torch.Tensor | None:
    """(B, K, 3, H, W): each reference with its person filled in (pose composite), else None."""
    if config.composite != "warp" or config.person_channel is None:
        return None
    person = ref_labels[:, :, config.person_channel : config.person_channel + 1]  # (B, K, 1, H, W)
    filled = C.fill_background(ref_images.flatten(0, 1), person.flatten(0, 1))
    return filled.to(ref_images.dtype).unflatten(0, ref_images.shape[:2])


class LabelEmbedder(nn.Module):
    """Encoder-decoder on the target label map (no normalisation) -> SPADE maps m_0 .. m_L.

    conv3x3(C -> ch[0]), L stride-2 convs to the bottleneck (m_L), then for i = L-1 .. 0: nearest x2 +
    conv3x3(ch[i+1] -> ch[i]) -> m_i. The decoder convs at levels < G use generated weights.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        ch, n, g = config.ch, config.num_levels, config.num_generated_levels
        self.num_generated = g
        self.encoder = nn.Sequential(
            ConvBlock(config.label_nc, ch(0), norm=False),
            *[ConvBlock(ch(i), ch(i + 1), stride=2, norm=False) for i in range(n)],
        )
        # decoder[str(i)]: ch[i+1] -> ch[i] for the learned levels i >= G (levels < G are generated)
        self.decoder = nn.ModuleDict({str(i): nn.Conv2d(ch(i + 1), ch(i), 3, padding=1) for i in range(g, n)})
        self.num_levels = n

    def generated_shapes(self, config: ModelConfig) -> dict[int, tuple[int, int, int]]:
        return {i: (config.ch(i), config.ch(i + 1), 3) for i in range(self.num_generated)}

    def forward(self, label: torch.Tensor, weights: GeneratedWeights) -> list[torch.Tensor]:
        x = self.encoder(label)  # (B, ch[L], H/2^L, W/2^L)
        maps = [x] * (self.num_levels + 1)
        for i in reversed(range(self.num_levels)):
            x = upsample2(x)
            if i < self.num_generated:
                weight, bias = weights[i]["embed"]
                x = batched_conv2d(x, weight, bias, padding=1)
            else:
                x = self.decoder[str(i)](x)
            x = lrelu(x)
            maps[i] = x
        return maps


class WarpUNet(nn.Module):
    """SPADE-combine embedder of a warped image + its mask (4 ch) -> features at levels 0 .. n-1.

    Encoder: conv(4 -> ch[0]) and `depth` stride-2 convs; decoder: nearest x2, concat the skip, conv.
    Only the levels H uses (up_0 .. up_{n-1}) are computed.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        ch, d = config.ch, config.combine_depth
        self.num_out = config.combine_levels
        self.enc = nn.ModuleList(
            [ConvBlock(4, ch(0), norm=False)]
            + [ConvBlock(ch(i), ch(i + 1), stride=2, norm=False) for i in range(d)]
        )
        self.dec = nn.ModuleDict({str(i): ConvBlock(ch(i + 1) + ch(i), ch(i), norm=False) for i in range(d)})

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        x = torch.cat([image, mask], dim=1)  # (B, 4, H, W)
        for conv in self.enc:
            x = conv(x)
            skips.append(x)
        outs = {len(skips) - 1: x}
        for i in reversed(range(len(self.dec))):
            x = self.dec[str(i)](torch.cat([upsample2(x), skips[i]], dim=1))
            outs[i] = x
        return [outs[i] for i in range(self.num_out)]


class ImageDecoder(nn.Module):
    """H: SPADE ResBlocks up_L .. up_0 from the reference bottleneck, then lrelu, conv3x3 -> 3, tanh."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        ch, n, g = config.ch, config.num_levels, config.num_generated_levels
        extra = config.combine_levels if config.combine == "spade" else 0
        self.blocks = nn.ModuleDict()
        for i in range(n + 1):
            fin = ch(i + 1) if i < n else ch(n)
            conds = [ch(i)] + ([ch(i), ch(i)] if i < extra else [])  # m_i, ref UNet, prev UNet
            self.blocks[str(i)] = SPADEResBlock(fin, ch(i), conds, generated=i < g, sn=config.spectral_norm)
        self.conv_img = nn.Conv2d(ch(0), 3, 3, padding=1)
        if config.composite == "warp":  # H predicts a residual over the warped reference: zero at first
            nn.init.zeros_(self.conv_img.weight)
            nn.init.zeros_(self.conv_img.bias)
        self.num_levels = n

    def generated_shapes(self, config: ModelConfig) -> GeneratedShapes:
        return {
            i: {
                name: (cout, cin, 1)
                for name, (cout, cin) in self.blocks[str(i)].generated_shapes(config.ch(i)).items()
            }
            for i in range(config.num_generated_levels)
        }

    def forward(self, x: torch.Tensor, maps: list[list[torch.Tensor | None]], weights: GeneratedWeights):
        for i in reversed(range(self.num_levels + 1)):
            x = self.blocks[str(i)](x, maps[i], weights.get(i))
            if i > 0:
                x = upsample2(x)
        return torch.tanh(self.conv_img(lrelu(x)))


class Generator(nn.Module):
    """Few-shot vid2vid generator: E_F, E_A, E_P, label embedder, W, warp UNets and H (SPEC §2)."""

    reads_label = True  # the driving label map conditions the network (`KeypointWarp` reads keypoints only)

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.ref_encoder = ReferenceEncoder(config)  # E_F
        self.attention = ReferenceAttention(config)  # E_A
        self.label_embedder = LabelEmbedder(config)
        self.decoder = ImageDecoder(config)  # H
        shapes = self.decoder.generated_shapes(config)
        for level, shape in self.label_embedder.generated_shapes(config).items():
            shapes[level]["embed"] = shape
        self.generated_shapes = shapes
        self.weight_generator = WeightGenerator(  # E_P
            shapes, {i: config.ch(i) for i in shapes}, sn=config.spectral_norm
        )
        self.flow = FlowNetwork(config)  # W
        if config.combine == "spade":
            self.combine_ref = WarpUNet(config)
            self.combine_prev = WarpUNet(config)

    # ---- components (for `fsv2v info`) --------------------------------------------------------
    def components(self) -> dict[str, nn.Module]:
        parts = {
            "E_F": self.ref_encoder,
            "E_P": self.weight_generator,
            "E_A": self.attention,
            "label_embedder": self.label_embedder,
            "H": self.decoder,
            "W": self.flow,
        }
        if self.config.combine == "spade":
            parts["combine_unets"] = nn.ModuleList([self.combine_ref, self.combine_prev])
        return parts

    def init_prev_combine_from_ref(self) -> None:
        """Start of the temporal training stage (SPEC §4): copy the reference warp UNet into the
        previous-frame one. No-op in matting mode."""
        if self.config.combine == "spade":
            self.combine_prev.load_state_dict(self.combine_ref.state_dict())

    # ---- references -----------------------------------------------------------------------------
    def _check_refs(self, ref_images: torch.Tensor, ref_labels: torch.Tensor) -> None:
        cfg = self.config
        if ref_images.ndim != 5 or ref_labels.ndim != 5:
            raise InputError("references must be (B, K, 3, H, W) images and (B, K, C, H, W) label maps")
        b, k = ref_images.shape[:2]
        if ref_labels.shape[:2] != (b, k) or ref_images.shape[2] != 3 or ref_labels.shape[2] != cfg.label_nc:
            raise InputError(
                f"reference shapes {tuple(ref_images.shape)} / {tuple(ref_labels.shape)} do not match "
                f"(B, K, 3, H, W) / (B, K, {cfg.label_nc}, H, W)"
            )
        if tuple(ref_images.shape[-2:]) != cfg.size or tuple(ref_labels.shape[-2:]) != cfg.size:
            raise InputError(
                f"references must be {cfg.height} x {cfg.width}, got {tuple(ref_images.shape[-2:])}"
            )
        if not 1 <= k <= cfg.k_max:
            raise InputError(f"number of references K={k} must be within 1..{cfg.k_max}")

    def encode_references(
        self,
        ref_images: torch.Tensor,
        ref_labels: torch.Tensor,
        ref_keypoints: torch.Tensor | None = None,
    ) -> ReferenceState:
        """Encode K references once per video: (B, K, 3, H, W), (B, K, C, H, W) -> ReferenceState.

        `ref_keypoints (B, K, 137, 3)` in crop pixels are needed with the keypoint flow prior."""
        self._check_refs(ref_images, ref_labels)
        b, k = ref_images.shape[:2]
        if self.config.uses_keypoints and ref_keypoints is None:
            raise InputError("this model's flow prior needs the reference keypoints (ref_keypoints=)")
        f_img, f_lab = self.ref_encoder.stem(ref_images.flatten(0, 1), ref_labels.flatten(0, 1))
        state = prior_state(self.config, ref_images, ref_labels, ref_keypoints)
        if k == 1:
            state.bottleneck, pooled = self.ref_encoder.finish(f_img, f_lab)
            state.weights = self.weight_generator(pooled)
        else:
            state.feat_img = f_img.unflatten(0, (b, k))
            state.feat_lab = f_lab.unflatten(0, (b, k))
            state.keys = self.attention.keys(ref_labels.flatten(0, 1), k)
        return state

    def _attend(self, label: torch.Tensor, refs: ReferenceState):
        """K > 1: E_A merges the references for this frame, then E_F finishes and E_P runs."""
        k, c_img = refs.num_refs, refs.feat_img.shape[2]
        values = torch.cat([refs.feat_img, refs.feat_lab], dim=2)  # (B, K, C_img + C_lab, h, w)
        merged, mass = self.attention(label, refs.keys, values, k)
        bottleneck, pooled = self.ref_encoder.finish(merged[:, :c_img], merged[:, c_img:])
        return bottleneck, self.weight_generator(pooled), mass.argmax(dim=1)

    # ---- one frame ------------------------------------------------------------------------------
    def forward(
        self,
        label: torch.Tensor,
        refs: ReferenceState,
        prev_image: torch.Tensor | None = None,
        prev_label: torch.Tensor | None = None,
        *,
        keypoints: torch.Tensor | None = None,
        ref_transform: torch.Tensor | None = None,
    ) -> GeneratorOutput:
        """Synthesize frame t from its label map (B, C, H, W), the references and, after frame 0, the
        previous generated frame (B, 3, H, W) with its label map.

        With the flow prior: `keypoints (B, 137, 3)` of the target in crop pixels, and optionally
        `ref_transform (B, K, 3)` = (a, cx, cy), the camera map from target-crop to reference-crop pixels
        (`models.composite.similarity_flow`; identity when None)."""
        if (prev_image is None) != (prev_label is None):
            raise InputError("prev_image and prev_label must be given together")
        b = label.shape[0]
        expected = (refs.ref_images.shape[0], self.config.label_nc, *self.config.size)
        if tuple(label.shape) != expected:
            raise InputError(f"label map shape {tuple(label.shape)} does not match {expected} (B, C, H, W)")
        if refs.num_refs == 1:
            bottleneck, weights = refs.bottleneck, refs.weights
            ref_index = torch.zeros(b, dtype=torch.long, device=label.device)
        else:
            bottleneck, weights, ref_index = self._attend(label, refs)
            if self.config.uses_keypoints and keypoints is not None and refs.ref_keypoints is not None:
                # W warps the reference whose pose is closest (as keypoint-warp does): the prior's warp
                # is best from there, while E_A still merges all K references for H's weights
                ref_index = closest_reference(refs.ref_keypoints, keypoints)
        rows = torch.arange(b, device=label.device)
        ref_image = refs.ref_images[rows, ref_index]  # (B, 3, H, W)
        ref_label = refs.ref_labels[rows, ref_index]  # (B, C, H, W)

        transform = ref_transform[rows, ref_index] if ref_transform is not None else None  # (B, 3)
        prior = prior_image = coverage = None
        if self.config.uses_keypoints:
            if keypoints is None or refs.ref_keypoints is None:
                raise InputError("this model's flow prior needs keypoints (keypoints=, ref_keypoints=)")
            prior, coverage = keypoint_prior(
                self.config,
                refs.ref_keypoints[rows, ref_index],
                keypoints,
                transform,
                reference_person(self.config, refs, rows, ref_index),
                explained_at(refs, rows, ref_index),
            )
            prior_image = warp(ref_image, prior)

        # W: reference warp and previous-frame warp share the network -> one batched pass
        has_prev = prev_image is not None
        if not has_prev:
            flow, mask = self.flow(label, ref_label, ref_image, prior, prior_image)
        else:
            # The previous frame is already in the target's place: its prior is no motion.
            prev_prior = torch.zeros_like(prior) if prior is not None else None
            flow, mask = self.flow(
                torch.cat([label, label]),
                torch.cat([ref_label, prev_label]),
                torch.cat([ref_image, prev_image]),
                torch.cat([prior, prev_prior]) if prior is not None else None,
                torch.cat([prior_image, prev_image]) if prior is not None else None,
            )
        flow_ref, mask_ref = flow[:b], mask[:b]
        if self.config.composite == "warp":
            warped_ref = warp_reference(self.config, refs, rows, ref_index, flow_ref, transform, coverage)
            warped_prev = warp(prev_image, flow[b:]) if has_prev else None
        else:
            warped = warp(torch.cat([ref_image, prev_image]) if has_prev else ref_image, flow)
            warped_ref, warped_prev = warped[:b], (warped[b:] if has_prev else None)
        flow_prev, mask_prev = (flow[b:], mask[b:]) if has_prev else (None, None)

        label_maps = self.label_embedder(label, weights)  # m_0 .. m_L
        maps: list[list[torch.Tensor | None]] = [[m] for m in label_maps]
        if self.config.combine == "spade":
            ref_feats = self.combine_ref(warped_ref, mask_ref)
            prev_feats = self.combine_prev(warped_prev, mask_prev) if has_prev else [None] * len(ref_feats)
            for i, (fr, fp) in enumerate(zip(ref_feats, prev_feats, strict=True)):
                maps[i] += [fr, fp]
        raw = self.decoder(bottleneck, maps, weights)  # (B, 3, H, W)
        image = raw
        if self.config.combine == "matting":
            image = raw * mask_ref + warped_ref * (1 - mask_ref)
            if has_prev:
                image = image * mask_prev + warped_prev * (1 - mask_prev)
        elif self.config.composite == "warp":  # SPEC §7: m = 1 - mask_ref; H's output is a residual
            image = C.composite(warped_ref, 1 - mask_ref, raw)
        return GeneratorOutput(
            image=image,
            warped_ref=warped_ref,
            mask_ref=mask_ref,
            flow_ref=flow_ref,
            ref_index=ref_index,
            warped_prev=warped_prev,
            mask_prev=mask_prev,
            flow_prev=flow_prev,
            raw_image=raw,
            coverage=coverage,
        )

    # ---- persistence ------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, **kwargs: Any) -> Path:
        """Write `model.safetensors` + `config.json` (see `fewshotv2v.models.weights.save_pretrained`)."""
        return save_pretrained(directory, self, **kwargs)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: Any = None) -> Generator:
        """Load a generator saved with `save_pretrained` (strict key checking), in eval mode.

        Reads the folder's files directly (`fewshotv2v.models.weights`): `models.io` builds every kind of
        network, so it depends on this module and not the other way round."""
        directory = Path(directory)
        model = cls(read_config(directory))
        load_weights(model, directory / WEIGHTS_NAME)
        model.eval()
        return model if device is None else model.to(device)
