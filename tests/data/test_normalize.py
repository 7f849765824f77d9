import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from seqjax.data import Standardizer, chronological_split, standardize_batch

SETTINGS = settings(max_examples=50, deadline=None)
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(
    x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=2), elements=finite)
)
def test_inverse_transform_round_trips(x):
    scaler = Standardizer().fit(x)
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(x)), x, atol=1e-6)


def test_fitted_on_train_only_validation_and_test_do_not_change_statistics():
    rng = np.random.default_rng(0)
    series = np.concatenate([rng.normal(0, 1, (750, 2)), rng.normal(50, 9, (250, 2))])
    train, val, test = chronological_split(series)
    scaler = Standardizer().fit(train)
    mean, scale = scaler.mean_.copy(), scaler.scale_.copy()
    np.testing.assert_allclose(mean, train.mean(axis=0))
    np.testing.assert_allclose(scale, train.std(axis=0))
    val_z, test_z = scaler.transform(val), scaler.transform(test)
    scaler.inverse_transform(test_z)
    np.testing.assert_array_equal(scaler.mean_, mean)
    np.testing.assert_array_equal(scaler.scale_, scale)
    # ... and the shifted future is visible as such, not normalised away.
    assert test_z.mean() > 10
    assert abs(val_z.mean()) > 1
    assert abs(scaler.transform(train).mean()) < 1e-9


def test_standardizer_details():
    scaler = Standardizer()
    with pytest.raises(ValueError, match="not fitted"):
        scaler.transform(np.ones(3))
    scaler.fit(np.c_[np.arange(10.0), np.full(10, 3.0)])
    z = scaler.transform(np.ones((2, 5, 2), dtype=np.float32))  # batched input is fine
    assert z.dtype == np.float32 and z.shape == (2, 5, 2)
    assert np.isfinite(z).all()  # constant feature: scale floored, no NaN
    with pytest.raises(ValueError, match="last axis has 2 features .* got shape \\(4, 3\\)"):
        scaler.transform(np.ones((4, 3)))
    clone = Standardizer.from_state_dict(scaler.state_dict())
    np.testing.assert_array_equal(
        clone.transform(np.ones((3, 2))), scaler.transform(np.ones((3, 2)))
    )
    with pytest.raises(ValueError, match="NaN at index 1"):
        Standardizer().fit(np.array([1.0, np.nan, 2.0]))
    s = Standardizer().fit(np.array([1.0, np.nan, 3.0]), nan_policy="omit")
    assert s.mean_ == 2.0


def test_standardize_batch():
    rng = np.random.default_rng(1)
    batch = rng.normal(5, 3, size=(8, 20, 3)).astype(np.float32)
    z, mean, std = standardize_batch(batch)
    assert z.dtype == np.float32 and mean.shape == std.shape == (1, 1, 3)
    np.testing.assert_allclose(z.mean(axis=(0, 1)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 1)), 1, atol=1e-5)
    np.testing.assert_allclose(z * std + mean, batch, atol=1e-5)
    stacked = rng.normal(size=(4, 8, 20, 3))
    z, mean, _ = standardize_batch(stacked, axis=(1, 2))
    assert mean.shape == (4, 1, 1, 3)
    np.testing.assert_allclose(z.mean(axis=(1, 2)), 0, atol=1e-9)


def test_standardize_batch_with_mask_ignores_padding():
    batch = np.array([[1.0, 3.0, 1000.0], [1.0, 3.0, -1000.0]])
    mask = np.array([[True, True, False], [True, True, False]])
    z, mean, std = standardize_batch(batch, axis=(0, 1), mask=mask)
    assert mean.item() == 2.0 and std.item() == 1.0
    np.testing.assert_array_equal(z, [[-1, 1, 0], [-1, 1, 0]])
