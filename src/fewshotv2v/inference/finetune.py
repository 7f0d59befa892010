"""Test-time finetuning on the references (SPEC §5; Wang et al. 2019, Sec. 4 "with finetuning").

Each step picks a random reference as the *target*, applies a random cyclic shift and a random horizontal
flip to its image and label map (the same to both), and runs one single-frame generator step (no previous
frame) followed by one discriminator step. Only E_P (`weight_generator`) and H (`decoder`) are trained:
the encoders, W and the label embedder's learned convs stay frozen, which keeps ~100 steps on K images from
overfitting the flow. Losses: hinge GAN + feature matching (x10) from the image discriminator, and an L1
reconstruction of the target (x10) standing in for the perceptual loss (VGG19 weights are an optional
download; the target is known exactly here).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fewshotv2v.losses import feature_matching_loss, hinge_d_loss, hinge_g_loss


@dataclass
class FinetuneStats:
    steps: int
    g_loss: float  # last generator loss
    d_loss: float  # last discriminator loss


def _augment(image: torch.Tensor, label: torch.Tensor, gen: torch.Generator, kps: torch.Tensor | None = None):
    """Same random cyclic shift (up to 1/8 of each side) and horizontal flip for image and label map (and
    the keypoints `(1, 137, 3)` for the flow prior, shifted and mirrored with them).

    image `(1, 3, H, W)`, label `(1, C, H, W)`.
    """
    h, w = image.shape[-2:]
    dy = int(torch.randint(-(h // 8), h // 8 + 1, (1,), generator=gen))
    dx = int(torch.randint(-(w // 8), w // 8 + 1, (1,), generator=gen))
    flip = bool(torch.rand((), generator=gen) < 0.5)
    out = []
    for x in (image, label):
        x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
        out.append(torch.flip(x, dims=(-1,)) if flip else x)
    if kps is not None:
        from fewshotv2v.data.augment import flip_keypoints

        moved = kps[0].detach().cpu().numpy().copy()
        moved[:, 0] += dx
        moved[:, 1] += dy
        moved = flip_keypoints(moved, w) if flip else moved
        kps = torch.from_numpy(moved)[None].to(label.device)
    return out[0], out[1], kps


def finetune(
    generator,
    discriminators,
    ref_images: torch.Tensor,
    ref_labels: torch.Tensor,
    steps: int,
    *,
    lr_g: float = 1e-4,
    lr_d: float = 4e-4,
    l1_weight: float = 10.0,
    fm_weight: float = 10.0,
    seed: int = 0,
    on_step=None,
    ref_keypoints: torch.Tensor | None = None,
) -> FinetuneStats:
    """Finetune `generator` in place on its references.

    Args:
        generator, discriminators: the loaded models (same device).
        ref_images: `(1, K, 3, H, W)` in [-1, 1]; ref_labels: `(1, K, C, H, W)` in [0, 1].
        steps: number of (G step, D step) pairs.
        on_step: optional callback `on_step(step, g_loss, d_loss)` (progress bars).
        ref_keypoints: `(1, K, 137, 3)` crop pixels, for models with the keypoint flow prior.
    """
    trained = list(generator.weight_generator.parameters()) + list(generator.decoder.parameters())
    trained_ids = {id(p) for p in trained}
    was_training = generator.training, discriminators.training
    saved_flags = {p: p.requires_grad for p in generator.parameters()}
    for p in generator.parameters():
        p.requires_grad_(id(p) in trained_ids)
    # Adam with betas (0, 0.999) and TTUR learning rates, as in training (SPEC §4).
    opt_g = torch.optim.Adam(trained, lr=lr_g, betas=(0.0, 0.999))
    opt_d = torch.optim.Adam(discriminators.parameters(), lr=lr_d, betas=(0.0, 0.999))
    gen = torch.Generator().manual_seed(seed)
    k = ref_images.shape[1]
    g_value = d_value = float("nan")
    # Only the trained parts in train mode: frozen ones keep their spectral-norm vectors unchanged too.
    generator.eval()
    generator.weight_generator.train()
    generator.decoder.train()
    discriminators.train()
    try:
        for step in range(steps):
            t = int(torch.randint(0, k, (1,), generator=gen))
            kps = ref_keypoints[:, t] if ref_keypoints is not None else None
            target, label, kps = _augment(ref_images[:, t], ref_labels[:, t], gen, kps)  # (1, 3|C, H, W)
            # E_P is being trained: the generated weights are recomputed every step.
            refs = generator.encode_references(ref_images, ref_labels, ref_keypoints)
            out = generator(label, refs, keypoints=kps)
            rows = torch.arange(1, device=label.device)
            cond_label = ref_labels[rows, out.ref_index]
            cond_image = ref_images[rows, out.ref_index]

            # G step (D frozen: gradients reach E_P and H only).
            discriminators.requires_grad_(False)
            fake_feats = discriminators.image_d(label, out.image, cond_label, cond_image)
            with torch.no_grad():
                real_feats = discriminators.image_d(label, target, cond_label, cond_image)
            g_loss = (
                hinge_g_loss(fake_feats)
                + fm_weight * feature_matching_loss(real_feats, fake_feats)
                + l1_weight * (out.image - target).abs().mean()
            )
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 10.0)
            opt_g.step()

            # D step on the detached output.
            discriminators.requires_grad_(True)
            fake = out.image.detach()
            d_loss = hinge_d_loss(
                discriminators.image_d(label, target, cond_label, cond_image),
                discriminators.image_d(label, fake, cond_label, cond_image),
            )
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_value, d_value = g_loss.item(), d_loss.item()
            if on_step is not None:
                on_step(step + 1, g_value, d_value)
    finally:
        for p, flag in saved_flags.items():
            p.requires_grad_(flag)
        generator.train(was_training[0])
        discriminators.train(was_training[1])
    return FinetuneStats(steps=steps, g_loss=g_value, d_loss=d_value)
