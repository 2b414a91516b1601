import time

import numpy as np
import pandas as pd
import pytest
import torch

from evaluators.cost import CostMeter, storage_bytes
from evaluators.fid import CLASSIFIER, INCEPTION, frechet_distance, make_extractor, protocol_fid
from spare.concepts import Concept
from spare.errors import UserError


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_perturbation():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(400, 16))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-6)
    shifted = [frechet_distance(f, f + d) for d in (0.1, 0.5, 1.0)]
    assert shifted == pytest.approx([16 * 0.01, 16 * 0.25, 16.0], rel=1e-6)  # |mu1 - mu2|^2, same covariance
    noisy = [frechet_distance(f, f + rng.normal(scale=s, size=f.shape)) for s in (0.1, 0.5, 1.0)]
    assert 0 < noisy[0] < noisy[1] < noisy[2]


def test_fid_closed_form_for_gaussians():
    # N(0, I) vs N(0, 4I) in d dims: Tr(I + 4I - 2*2I) = d. Large samples get close.
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20000, 4)), 2 * rng.normal(size=(20000, 4))
    assert frechet_distance(a, b) == pytest.approx(4.0, rel=0.05)


def test_fid_matches_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Flatten(torch.nn.Module):  # a fixed "feature extractor": 12 pixels of the image
        num_features = 12

        def forward(self, x):
            return x.float().flatten(1)[:, :12]

    rng = np.random.default_rng(2)
    real = torch.from_numpy(rng.integers(0, 256, (300, 3, 8, 8), dtype=np.uint8))
    fake = torch.from_numpy(np.clip(rng.integers(0, 256, (300, 3, 8, 8)) * 0.8 + 20, 0, 255).astype(np.uint8))
    metric = FrechetInceptionDistance(feature=Flatten(), input_img_size=(3, 8, 8))
    metric.update(real, real=True)
    metric.update(fake, real=False)
    ours = frechet_distance(real.flatten(1)[:, :12].numpy(), fake.flatten(1)[:, :12].numpy())
    assert ours == pytest.approx(float(metric.compute()), rel=1e-4)


def test_protocol_drops_the_forgotten_concept_from_both_sides():
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"style": ["A"] * 50 + ["B"] * 50, "object": ["x"] * 100})
    feats = rng.normal(size=(100, 4))
    answers_feats = feats.copy()
    answers_feats[:50] += 10.0  # only style A's generated images are off
    assert protocol_fid(table, feats, table, answers_feats, Concept("style", "A")) == pytest.approx(0.0, abs=1e-6)
    assert protocol_fid(table, feats, table, answers_feats, None) > 10


def test_classifier_features_are_labelled_fid_cls(tmp_path):
    class Dummy:
        def features(self, images):
            return torch.zeros(len(images), 3)

    assert make_extractor(None, Dummy()).name == CLASSIFIER == "FID(cls)"
    assert INCEPTION == "FID"
    with pytest.raises(UserError, match="never downloaded"):
        make_extractor(tmp_path / "pt_inception.pth", Dummy())


def test_cost_meter_measures_time_and_memory(tmp_path):
    with CostMeter() as small:
        sum(range(1000))
    with CostMeter() as big:
        block = np.ones(300 * 1024**2 // 8)  # 300 MiB, touched
        block[::512] += 1
        del block
    assert big.peak_bytes - small.peak_bytes > 200 * 1024**2
    assert big.memory_kind == "cpu_peak_rss"
    with CostMeter() as asleep:  # waiting costs wall time, not CPU time
        time.sleep(0.3)
    with CostMeter() as busy:  # spins until it has used 0.3 s of CPU, however busy the machine is
        start = time.process_time()
        while time.process_time() - start < 0.3:
            pass
    assert asleep.wall_time_s >= 0.3 and asleep.cpu_time_s < 0.1
    assert busy.cpu_time_s >= 0.29 and busy.wall_time_s >= busy.cpu_time_s - 0.01 and busy.load_1min >= 0
    m = big.metrics(storage_bytes=3 * 1024**3)
    assert m["storage_gb"].value == pytest.approx(3.0) and not m["time_s"].higher_is_better
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.bin").write_bytes(b"x" * 1000)
    (tmp_path / "b.bin").write_bytes(b"y" * 24)
    assert storage_bytes(tmp_path / "d", tmp_path / "b.bin") == 1024
    with pytest.raises(FileNotFoundError):
        storage_bytes(tmp_path / "nope")
