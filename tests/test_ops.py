"""RoI Align, NMS and box IoU (model/core/ops.py).

Hand-worked cases pin the semantics; a slow loop that transcribes torchvision's CPU
``roi_align_forward_kernel`` checks the vectorised version on random inputs.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from model.core import ops
from model.core.ops import box_iou, nms_torch, roi_align_torch


def ramp(height: int = 4, width: int = 4, dtype=torch.float32) -> torch.Tensor:
    """``[1, 1, H, W]`` feature with value ``4 * y + x``: bilinear samples are exact."""
    y = torch.arange(height, dtype=dtype)[:, None]
    x = torch.arange(width, dtype=dtype)[None, :]
    return (4 * y + x)[None, None]


def pool(features, roi, output_size=1, **kwargs):
    rois = torch.tensor([roi], dtype=features.dtype)
    return roi_align_torch(features, rois, output_size, **kwargs)


def reference_roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned):
    """Line-by-line transcription of torchvision's CPU ``roi_align_forward_kernel``."""
    feats = features.detach().double().numpy()
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    _, channels, height, width = feats.shape
    output = np.zeros((len(rois), channels, out_h, out_w))
    for k, (batch, x1, y1, x2, y2) in enumerate(rois.double().tolist()):
        offset = 0.5 if aligned else 0.0
        start_w, start_h = x1 * spatial_scale - offset, y1 * spatial_scale - offset
        roi_w = x2 * spatial_scale - offset - start_w
        roi_h = y2 * spatial_scale - offset - start_h
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / out_h, roi_w / out_w
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / out_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / out_w)
        count = max(grid_h * grid_w, 1)
        for ph in range(out_h):
            for pw in range(out_w):
                # Pre-calculated bilinear corners and weights, as in pre_calc_for_bilinear_interpolate.
                corners = []
                for iy in range(grid_h):
                    y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        if y < -1.0 or y > height or x < -1.0 or x > width:
                            continue
                        y, x = max(y, 0.0), max(x, 0.0)
                        y_low, x_low = int(y), int(x)
                        if y_low >= height - 1:
                            y_high = y_low = height - 1
                            y = float(y_low)
                        else:
                            y_high = y_low + 1
                        if x_low >= width - 1:
                            x_high = x_low = width - 1
                            x = float(x_low)
                        else:
                            x_high = x_low + 1
                        ly, lx = y - y_low, x - x_low
                        hy, hx = 1.0 - ly, 1.0 - lx
                        corners += [
                            (y_low, x_low, hy * hx),
                            (y_low, x_high, hy * lx),
                            (y_high, x_low, ly * hx),
                            (y_high, x_high, ly * lx),
                        ]
                for c in range(channels):
                    total = sum(w * feats[int(batch), c, yy, xx] for yy, xx, w in corners)
                    output[k, c, ph, pw] = total / count
    return torch.from_numpy(output)


def random_rois(generator, count, batches, height, width, scale):
    """RoIs in input coordinates: large, tiny, partly or wholly outside the map."""
    centre = torch.rand(count, 2, generator=generator) * torch.tensor([width + 4.0, height + 4.0]) - 2
    size = torch.rand(count, 2, generator=generator) ** 2 * torch.tensor([width, height]) * 1.5
    size[: count // 4] *= 0.05  # tiny RoIs, below one pixel
    size[-2, 0] = 0.0  # zero width, positive height
    size[-1] *= -1  # inverted corners
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1) / scale
    batch = torch.randint(batches, (count, 1), generator=generator).float()
    return torch.cat([batch, boxes], dim=1)


# ---------------------------------------------------------------- roi_align by hand


def test_ramp_aligned_2x2_bins_sample_the_bin_centres():
    # aligned: roi [0, 4] -> [-0.5, 3.5], bins of 2 px, one sample at 0.5 and 2.5.
    out = pool(ramp(), [0, 0, 0, 4, 4], 2, sampling_ratio=1, aligned=True)
    expected = torch.tensor([[2.5, 4.5], [10.5, 12.5]])
    torch.testing.assert_close(out[0, 0], expected)


def test_ramp_aligned_two_samples_average_four_pixels():
    # Samples at 0 and 1 along each axis of the first bin: mean of 0, 1, 4, 5.
    out = pool(ramp(), [0, 0, 0, 4, 4], 2, sampling_ratio=2, aligned=True)
    assert out[0, 0, 0, 0].item() == pytest.approx(2.5)


def test_sample_past_last_pixel_reads_the_last_pixel():
    # Non-aligned roi y in [3, 4]: the sample at y = 3.5 is clamped to row 3.
    out = pool(ramp(), [0, 0, 3, 1, 4], sampling_ratio=1, aligned=False)
    assert out.item() == pytest.approx(4 * 3 + 0.5)


def test_sample_in_minus_one_to_zero_reads_the_first_pixel():
    # Sample at y = -0.5 is clamped to row 0; x = 1.5 interpolates columns 1 and 2.
    out = pool(ramp(), [0, 1, -1, 2, 0], sampling_ratio=1, aligned=False)
    assert out.item() == pytest.approx(1.5)


def test_sample_beyond_the_border_band_contributes_zero():
    # One sample per bin at y = 5 > H = 4: outside the [-1, H] band.
    out = pool(ramp(), [0, 0, 4, 1, 6], sampling_ratio=1, aligned=False)
    assert out.item() == 0.0
    out = pool(ramp(), [0, 0, 3, 1, 5], (2, 1), sampling_ratio=1, aligned=False)
    # Bins of 1 px: samples at y = 3.5 (-> row 3) and y = 4.5 (dropped).
    torch.testing.assert_close(out[0, 0, :, 0], torch.tensor([12.5, 0.0]))


def test_adaptive_sampling_uses_ceil_of_roi_over_output():
    # Non-aligned roi [0, 4]^2 into 1 bin: ceil(4 / 1) = 4 samples per axis at
    # 0.5, 1.5, 2.5, 3.5; the last is clamped to 3, so the mean is 1.875, not 2.
    out = pool(ramp(), [0, 0, 0, 4, 4], sampling_ratio=0, aligned=False)
    assert out.item() == pytest.approx(4 * 1.875 + 1.875)


def test_constant_region_pools_to_its_value():
    features = torch.zeros(2, 3, 8, 8)
    features[1, :, 2:6, 1:7] = torch.tensor([7.0, -2.0, 0.25])[:, None, None]
    # Aligned roi [2, 3]..[6, 5] samples only pixel centres inside the constant block.
    out = pool(features, [1, 2, 3, 6, 5], 3, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(out[0], features[1, :, 3, 3][:, None, None].expand(3, 3, 3))


def test_spatial_scale_maps_input_to_feature_coordinates():
    features = ramp(8, 8)
    scaled = pool(features, [0, 0, 0, 16, 16], 2, spatial_scale=0.25, sampling_ratio=2)
    direct = pool(features, [0, 0, 0, 4, 4], 2, spatial_scale=1.0, sampling_ratio=2)
    torch.testing.assert_close(scaled, direct)


def test_zero_size_roi_non_aligned_is_widened_to_one_pixel():
    # Width and height forced to 1: the single sample sits at 1.2 + 0.5 on both axes.
    out = pool(ramp(), [0, 1.2, 1.2, 1.2, 1.2], sampling_ratio=1, aligned=False)
    assert out.item() == pytest.approx(5 * 1.7)


def test_zero_size_roi_aligned_adaptive_pools_to_zero():
    # ceil(0 / 1) = 0 samples: nothing to average.
    out = pool(ramp(), [0, 1.2, 1.2, 1.2, 1.2], sampling_ratio=0, aligned=True)
    assert out.item() == 0.0


def test_roi_without_samples_along_one_axis_pools_to_zero():
    # Aligned, adaptive: zero width gives ceil(0 / 2) = 0 samples along x.
    out = pool(ramp() + 1, [0, 2, 0, 2, 4], 2, sampling_ratio=0, aligned=True)
    assert torch.equal(out, torch.zeros(1, 1, 2, 2))


def test_rois_pick_their_own_batch_image():
    features = torch.stack([torch.full((2, 5, 5), 1.0), torch.full((2, 5, 5), 3.0)])
    rois = torch.tensor([[1, 0, 0, 5, 5], [0, 1, 1, 4, 4], [1, 2, 2, 3, 3]], dtype=torch.float32)
    out = roi_align_torch(features, rois, 5)
    torch.testing.assert_close(out[:, 0, 2, 2], torch.tensor([3.0, 1.0, 3.0]))


def test_output_shape_dtype_and_empty_rois():
    features = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    out = roi_align_torch(features, torch.zeros(0, 5, dtype=torch.float64), (2, 3))
    assert out.shape == (0, 3, 2, 3) and out.dtype == torch.float64
    rois = torch.tensor([[0, 0, 0, 3, 3]], dtype=torch.float32)  # rois cast to features' dtype
    assert roi_align_torch(features, rois, (4, 5)).shape == (1, 3, 4, 5)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="rois"):
        roi_align_torch(torch.zeros(1, 1, 4, 4), torch.zeros(3, 4), 2)


# ---------------------------------------------------------------- roi_align vs reference


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [2, 0, -1, 3])
def test_matches_torchvision_kernel_transcription(aligned, sampling_ratio):
    generator = torch.Generator().manual_seed(7 + 2 * sampling_ratio + aligned)
    scale = 0.5
    features = torch.randn(2, 3, 7, 9, generator=generator)
    rois = random_rois(generator, 24, batches=2, height=7, width=9, scale=scale)
    for output_size in [(3, 2), 5]:
        got = roi_align_torch(features, rois, output_size, scale, sampling_ratio, aligned)
        expected = reference_roi_align(features, rois, output_size, scale, sampling_ratio, aligned)
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)


def test_reference_and_vectorised_agree_in_double():
    generator = torch.Generator().manual_seed(11)
    features = torch.randn(1, 2, 5, 6, generator=generator, dtype=torch.float64)
    rois = random_rois(generator, 16, batches=1, height=5, width=6, scale=1.0).double()
    got = roi_align_torch(features, rois, 4, 1.0, 0, True)
    torch.testing.assert_close(got, reference_roi_align(features, rois, 4, 1.0, 0, True))


# ---------------------------------------------------------------- roi_align gradients


def test_gradcheck_wrt_features():
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(2, 2, 5, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [[0, 0.3, 0.7, 3.9, 4.4], [1, -1.5, 2.0, 2.0, 6.5], [1, 1.1, 1.1, 1.4, 1.6]],
        dtype=torch.float64,
    )
    for sampling_ratio, aligned in [(2, True), (0, False)]:
        assert torch.autograd.gradcheck(
            lambda f: roi_align_torch(f, rois, 2, 1.0, sampling_ratio, aligned), (features,)
        )


def test_gradient_reaches_only_sampled_pixels():
    features = torch.zeros(1, 1, 6, 6, requires_grad=True)
    # Aligned roi [1, 3]^2 samples pixel centres 1..2 (and their bilinear neighbours).
    pool(features, [0, 1, 1, 3, 3], 2, sampling_ratio=1, aligned=True).sum().backward()
    touched = features.grad[0, 0] != 0
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[1:3, 1:3] = True
    assert torch.equal(touched, expected)
    assert features.grad.sum().item() == pytest.approx(4.0)


def test_no_gradient_reaches_rois():
    # torchvision's backward returns no gradient for the boxes; neither do we.
    features = torch.randn(1, 1, 6, 6, requires_grad=True)
    rois = torch.tensor([[0, 1.3, 1.1, 3.7, 4.2]], requires_grad=True)
    roi_align_torch(features, rois, 2).sum().backward()
    assert rois.grad is None and features.grad is not None


# ---------------------------------------------------------------- box_iou and nms


def test_box_iou_by_hand():
    a = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5]])
    b = torch.tensor([[1.0, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    expected = torch.tensor([[90 / 110, 0.0, 1.0], [45 / 105, 0.0, 0.5]])
    torch.testing.assert_close(box_iou(a, b), expected)
    # numpy in, numpy out, the same numbers (the tracker's candidate grouping)
    on_host = box_iou(a.numpy(), b.numpy())
    assert isinstance(on_host, np.ndarray)
    np.testing.assert_array_equal(on_host, expected.numpy())


def test_box_iou_of_two_empty_boxes_is_nan_for_tensors_and_arrays():
    empty = [[5.0, 5, 5, 5]]
    assert torch.isnan(box_iou(torch.tensor(empty), torch.tensor(empty))).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warning from numpy either
        assert np.isnan(box_iou(np.array(empty), np.array(empty))).all()


# Four boxes: D overlaps A by 0.5, A overlaps B by 90/110, D overlaps B by 45/105, C is apart.
NMS_BOXES = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 5]])
NMS_SCORES = torch.tensor([0.9, 0.8, 0.7, 0.95])


@pytest.mark.parametrize(
    "threshold, kept",
    [
        (0.7, [3, 0, 2]),  # B suppressed by A (0.82 > 0.7)
        (0.5, [3, 0, 2]),  # IoU(D, A) == 0.5 exactly: equality does not suppress
        (0.49, [3, 1, 2]),  # A suppressed by D, so B (0.43 with D) survives
        (0.4, [3, 2]),  # B is now suppressed by D too
        (0.9, [3, 0, 1, 2]),
    ],
)
def test_nms_by_hand(threshold, kept):
    result = nms_torch(NMS_BOXES, NMS_SCORES, threshold)
    assert result.dtype == torch.long
    assert result.tolist() == kept


def test_nms_equal_scores_visit_lower_index_first():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [0, 1, 10, 11]])
    assert nms_torch(boxes, torch.ones(3), 0.5).tolist() == [0]
    assert nms_torch(boxes.flip(0), torch.ones(3), 0.5).tolist() == [0]


def test_nms_empty_input():
    result = nms_torch(torch.zeros(0, 4), torch.zeros(0), 0.7)
    assert result.dtype == torch.long and result.numel() == 0


def test_nms_against_brute_force_definition():
    generator = torch.Generator().manual_seed(5)
    xy = torch.rand(40, 2, generator=generator) * 20
    boxes = torch.cat([xy, xy + 2 + torch.rand(40, 2, generator=generator) * 8], dim=1)
    scores = torch.rand(40, generator=generator)
    kept = nms_torch(boxes, scores, 0.3).tolist()
    iou = box_iou(boxes, boxes)
    # A box is kept iff no higher-scoring kept box overlaps it by more than 0.3.
    expected = []
    for index in scores.argsort(descending=True).tolist():
        if all(iou[index, other] <= 0.3 for other in expected):
            expected.append(index)
    assert kept == expected
    assert scores[kept].diff().le(0).all()


# ---------------------------------------------------------------- dispatch


def test_backend_constant_names_the_implementation():
    assert ops.BACKEND in ("torch", "torchvision")
    features = torch.randn(1, 2, 6, 6)
    rois = torch.tensor([[0, 0.5, 0.5, 4.5, 5.0]])
    torch.testing.assert_close(ops.roi_align(features, rois, 3), roi_align_torch(features, rois, 3))
    assert ops.nms(NMS_BOXES, NMS_SCORES, 0.7).tolist() == [3, 0, 2]


@pytest.mark.skipif(ops.BACKEND != "torchvision", reason="torchvision is not importable")
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [2, 0])
def test_torch_matches_torchvision(aligned, sampling_ratio):
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(2, 4, 9, 11, generator=generator)
    rois = random_rois(generator, 30, batches=2, height=9, width=11, scale=0.25)
    torch.testing.assert_close(
        roi_align_torch(features, rois, 5, 0.25, sampling_ratio, aligned),
        ops.roi_align(
            features, rois, 5, spatial_scale=0.25, sampling_ratio=sampling_ratio, aligned=aligned
        ),
        rtol=1e-5,
        atol=1e-5,
    )
    boxes = rois[:, 1:]
    scores = torch.rand(30, generator=generator)
    assert torch.equal(nms_torch(boxes, scores, 0.5), ops.nms(boxes, scores, 0.5))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_the_features_device():
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(2, 3, 7, 9, generator=generator)
    rois = random_rois(generator, 12, batches=2, height=7, width=9, scale=1.0)
    on_device = roi_align_torch(features.cuda(), rois.cuda(), 3, 1.0, 0, True)
    assert on_device.device.type == "cuda"
    torch.testing.assert_close(on_device.cpu(), roi_align_torch(features, rois, 3, 1.0, 0, True))
    kept = nms_torch(NMS_BOXES.cuda(), NMS_SCORES.cuda(), 0.7)
    assert kept.device.type == "cuda" and kept.tolist() == [3, 0, 2]
