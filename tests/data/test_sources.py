import numpy as np
import pytest

from seqjax.data import series_iterator, source_minibatches, source_series


class ListSource:
    """A random-access source like tfds' ArrayRecordDataSource, counting reads."""

    def __init__(self, records):
        self.records = records
        self.reads = 0

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        self.reads += 1
        return self.records[i]


def make_records(n):
    rng = np.random.default_rng(0)
    return [
        {
            "inputs": rng.normal(size=(5 + i % 4, 2)).astype(np.float32),
            "target": np.float32(i),
            "id": np.int64(i),
        }
        for i in range(n)
    ]


def test_source_minibatches_pad_sequences():
    source = ListSource(make_records(10))
    batches = list(
        source_minibatches(
            source,
            4,
            features={"inputs": "inputs", "targets": "target"},
            sequence_features=("inputs",),
            pad_to=9,
            seed=2,
        )
    )
    assert len(batches) == 3 and source.reads == 10
    seen = []
    for b in batches:
        assert set(b) == {"inputs", "targets", "seq_lengths", "mask"}
        assert b["inputs"].shape == (4, 9, 2) and b["mask"].shape == (4,)
        for r in np.flatnonzero(b["mask"]):
            i = int(b["targets"][r])
            seen.append(i)
            n = source.records[i]["inputs"].shape[0]
            assert b["seq_lengths"][r] == n
            np.testing.assert_array_equal(b["inputs"][r, :n], source.records[i]["inputs"])
            assert (b["inputs"][r, n:] == 0).all()
    assert sorted(seen) == list(range(10))


def test_source_minibatches_sequence_targets_mask():
    records = [{"x": np.arange(n), "targets": np.arange(n) + 1} for n in (2, 3, 4)]
    (b,) = source_minibatches(records, 3, shuffle=False, sequence_features=("x", "targets"))
    assert b["x"].shape == (3, 4)
    np.testing.assert_array_equal(b["mask"].sum(axis=1), [2, 3, 4])


def test_source_minibatches_errors():
    source = make_records(3)
    with pytest.raises(ValueError, match="different shapes .* sequence_features"):
        next(source_minibatches(source, 3, features=["inputs"]))
    with pytest.raises(ValueError, match="no feature 'nope'"):
        next(source_minibatches(source, 3, features=["nope"]))
    with pytest.raises(ValueError, match="longer than pad_to=4"):
        next(
            source_minibatches(
                source, 3, features=["inputs"], sequence_features=["inputs"], pad_to=4
            )
        )


def test_source_series_into_series_iterator():
    records = [{"values": np.arange(float(n))} for n in (5, 9, 3, 7)]
    series = source_series(records)
    assert [len(s) for s in series] == [5, 9, 3, 7]
    total = sum(int(b["mask"].sum()) for b in series_iterator(series, 2, 4))
    assert total == 4 + 8 + 2 + 6
    with pytest.raises(ValueError, match="record 0 has no feature 'close'"):
        source_series(records, "close")
