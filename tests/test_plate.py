"""The full-resolution pose plate (`inference.plate`): the hole is filled with the photo's own texture."""

from __future__ import annotations

import pytest
import torch

from fewshotv2v.inference.plate import fill_plate
from fewshotv2v.models.composite import fill_background


def _stripes(h=96, w=128, period=8) -> torch.Tensor:
    """(1, 3, h, w) in [-1, 1]: vertical stripes (a texture a smooth fill cannot continue) over a ramp."""
    x = torch.arange(w, dtype=torch.float32)
    y = torch.arange(h, dtype=torch.float32)
    stripes = ((x // (period // 2)) % 2) * 1.2 - 0.6  # (w,)
    ramp = (y / h - 0.5) * 0.4  # (h,)
    img = (stripes[None, :] + ramp[:, None]).clamp(-1, 1)
    return torch.stack([img, 0.5 * img, -img])[None]


def _hole(h=96, w=128, box=(30, 40, 66, 88)) -> torch.Tensor:
    mask = torch.zeros(1, 1, h, w)
    y0, x0, y1, x1 = box
    mask[..., y0:y1, x0:x1] = 1.0
    return mask


def test_the_hole_gets_the_photos_texture_and_the_rest_is_untouched(one_thread):
    image, mask = _stripes(), _hole()
    patches = fill_plate(image, mask, dilate=2)
    smooth = fill_background(image, mask, dilate=2)
    # The photo is its own background wherever the mask says so beyond the dilation ring; the smooth fill
    # changes the ring. (In the ring, a pixel is filled only if it looks like the person beside it: here
    # the "person" has the background's stripes, see the next tests for a real edge.)
    outside = (mask < 0.05).expand_as(image)
    ring = outside & (torch.nn.functional.max_pool2d(mask, 5, stride=1, padding=2) > 0.5).expand_as(image)
    assert torch.equal(patches[outside & ~ring], image[outside & ~ring])
    assert ring.any() and not torch.equal(smooth[ring], image[ring])
    inside = (mask > 0.5).expand_as(image)
    err_patches = (patches - image)[inside].abs().mean()
    err_smooth = (smooth - image)[inside].abs().mean()
    assert err_patches < 0.25 * err_smooth, (float(err_patches), float(err_smooth))
    # the stripes carry on: the filled rows vary as much as the photo's own rows
    assert patches[0, 0, 40:56, 48:80].std(dim=1).mean() > 0.8 * image[0, 0, 40:56, 48:80].std(dim=1).mean()


def test_the_same_photo_always_gives_the_same_plate(one_thread):
    image, mask = _stripes(), _hole()
    assert torch.equal(fill_plate(image, mask), fill_plate(image, mask))


def test_nothing_far_from_the_hole_is_copied_into_it(one_thread):
    """Sources lie in a band round the hole: a distinct object across the photo stays where it is."""
    gen = torch.Generator().manual_seed(0)
    image = (torch.rand(1, 3, 160, 160, generator=gen) * 0.2 - 0.1).expand(1, 3, -1, -1).clone()
    image[:, 0, 5:35, 120:155] = 1.0  # a red square in a far corner
    image[:, 1:, 5:35, 120:155] = -1.0
    mask = _hole(160, 160, (90, 20, 140, 70))
    out = fill_plate(image, mask, dilate=2)
    hole = torch.nn.functional.max_pool2d(mask, 5, stride=1, padding=2)[0, 0] > 0.5
    assert out[0, 0][hole].max() < 0.5  # no red in the hole
    assert torch.equal(out[..., 5:35, 120:155], image[..., 5:35, 120:155])


@pytest.mark.parametrize("cover", [0.0, 1.0])
def test_an_empty_or_a_full_mask_is_handled(cover):
    image = _stripes(32, 40)
    mask = torch.full((1, 1, 32, 40), cover)
    out = fill_plate(image, mask, dilate=1)
    assert out.shape == image.shape and torch.isfinite(out).all()
    if cover == 0.0:
        assert torch.equal(out, image)


def test_the_pipeline_fills_the_plate_from_the_photo_unless_asked_for_the_smooth_fill(one_thread):
    from fewshotv2v.data.synthetic import Pose, make_identity, render_person
    from fewshotv2v.errors import ConfigError
    from fewshotv2v.hub import resolve_model
    from fewshotv2v.models.io import load_pretrained
    from fewshotv2v.pipeline import Pipeline

    image, kps, mask = render_person(make_identity(0), Pose(), (160, 128))
    model, _ = load_pretrained(resolve_model("keypoint-warp"))
    plates = {}
    for plate in ("patches", "smooth"):
        pipe = Pipeline(model, backend="none", device="cpu", plate=plate)
        pipe.set_references([image], keypoints=[kps], masks=[mask])
        plates[plate] = pipe._composer.backdrop
    person = torch.from_numpy(mask > 0.5)
    texture = {k: float(v[0, :, person].std(dim=1).mean()) for k, v in plates.items()}
    assert texture["patches"] > 1.5 * texture["smooth"]  # the backdrop's texture, not a blur of it
    with pytest.raises(ConfigError, match="plate must be one of"):
        Pipeline(model, backend="none", device="cpu", plate="mirror")


def test_a_person_standing_on_grass_before_a_crowd_is_replaced_by_grass_below_and_crowd_above(one_thread):
    """A wide photo (like OpenCV's footballer): a dark busy crowd over bright grass, the person from the
    crowd down to the bottom edge. The hole over the grass must be grass: the coarsest level used to be so
    small that the bottom rows centred no source patch, and the search, started from the smooth fill's
    average colour, filled all of the person with the crowd (green off by 0.6 here)."""
    h, w = 120, 200
    gen = torch.Generator().manual_seed(0)
    crowd = torch.rand(1, 3, h // 4, w // 4, generator=gen) * 0.8 - 0.95  # dark blobs of 4 x 4 pixels
    crowd = torch.nn.functional.interpolate(crowd, scale_factor=4, mode="nearest")[0]
    grass = torch.tensor([-0.6, 0.5, -0.7])[:, None, None] + 0.05 * torch.rand(3, h, w, generator=gen)
    image = torch.where(torch.arange(h)[:, None] < 90, crowd, grass)[None]
    mask = _hole(h, w, (20, 60, h, 140))
    out = fill_plate(image, mask, dilate=2)
    over_grass = out[0, :, 95:, 62:138].mean(dim=(1, 2))
    assert (over_grass - grass.mean(dim=(1, 2))).abs().max() < 0.05, over_grass
    over_crowd = out[0, :, 25:80, 62:138]
    assert abs(over_crowd.mean() - crowd.mean()) < 0.05 and over_crowd.std() > 0.7 * crowd.std()


def test_sources_limit_what_the_hole_is_filled_from(one_thread):
    """`sources` (what an arm hid is filled from its own body part only): a hole between a red and a blue
    half, allowed to copy only from the blue half, is blue; unrestricted, its left side is red."""
    h, w = 64, 96
    gen = torch.Generator().manual_seed(0)
    image = 0.1 * torch.rand(1, 3, h, w, generator=gen)
    image[:, 0, :, : w // 2] += 0.8  # red left half
    image[:, 2, :, w // 2 :] += 0.8  # blue right half
    mask = _hole(h, w, (16, 32, 48, 64))
    sources = torch.zeros(1, 1, h, w)
    sources[..., w // 2 :] = 1.0
    only_blue = fill_plate(image, mask, dilate=1, sources=sources)[0, :, 16:48, 32:64]
    assert only_blue[0].max() < 0.2 and only_blue[2].min() > 0.7
    free = fill_plate(image, mask, dilate=1)[0, :, 16:48, 32:40]
    assert free[0].mean() > 0.7


def test_the_persons_edge_that_the_mask_left_out_is_filled_and_the_background_beside_it_kept(one_thread):
    """The detector's mask stops 2 px short of the person's edge on one side (a footballer's blue sock
    stayed on the plate as a strip where he stood): those pixels look like the person, not the grass
    beside them, and are filled; the ring's grass pixels stay the photo's, bit for bit (no halo)."""
    h, w = 64, 96
    gen = torch.Generator().manual_seed(0)
    grass = torch.tensor([-0.6, 0.5, -0.7])[:, None, None] + 0.1 * torch.rand(3, h, w, generator=gen)
    image = grass.clone()[None]
    image[0, :, 16:48, 30:60] = torch.tensor([-0.8, -0.6, 0.9])[:, None, None]  # the blue person
    mask = _hole(h, w, (16, 32, 48, 60))  # misses the person's two left columns (x 30, 31)
    out = fill_plate(image, mask, dilate=3)
    edge = out[0, :, 18:46, 30:32]
    assert (edge - grass[:, 18:46, 30:32]).abs().mean() < 0.15, "the blue edge stayed on the plate"
    beside = (torch.nn.functional.max_pool2d(mask, 7, stride=1, padding=3) > 0.5)[0, 0]
    beside[16:48, 30:60] = False  # the ring's grass pixels
    assert beside.any() and torch.equal(out[0][:, beside], image[0][:, beside])
