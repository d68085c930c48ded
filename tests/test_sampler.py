"""S2HAND(V) sequence sampling: m sequences x n frames, `interval` apart, never across a cut."""
import numpy as np
import pytest

from s2hand.data.sampler import SequenceBatchSampler, sequence_windows


def _table(lengths, cuts=()):
    seq = np.concatenate([np.full(n, s) for s, n in enumerate(lengths)])
    frame = np.concatenate([np.arange(n) for n in lengths])
    cut = np.zeros(len(seq), bool)
    for s, f in cuts:
        cut[(seq == s) & (frame == f)] = True
    return seq, frame, cut


def test_windows_respect_interval_sequences_and_cuts():
    seq, frame, cut = _table([10, 7], cuts=[(0, 5)])
    w = sequence_windows(seq, frame, n=3, interval=2, cut=cut)
    assert w.shape[1] == 3
    for rows in w:
        assert len(set(seq[rows])) == 1
        assert np.all(np.diff(frame[rows]) == 2)
        f = frame[rows]
        if seq[rows[0]] == 0:
            assert (f[-1] < 5) or (f[0] >= 5), "no window spans the cut before frame 5"
    # sequence 1 (7 frames): starts 0, 1, 2 -> 3 windows
    assert sum(seq[w[:, 0]] == 1) == 3


def test_batches_are_m_by_n_and_deterministic():
    seq, frame, cut = _table([30, 30, 30, 30])
    s = SequenceBatchSampler(seq, frame, batch_size=12, n=3, interval=3, cut=cut, seed=1)
    batches = list(s)
    assert len(batches) == len(s) and all(len(b) == 12 for b in batches)
    for b in batches:
        g = np.asarray(b).reshape(4, 3)
        assert all(len(set(seq[r])) == 1 and np.all(np.diff(frame[r]) == 3) for r in g)
        assert len(set(seq[g[:, 0]])) == 4, "the 4 windows of a batch come from 4 sequences"
    assert batches == list(SequenceBatchSampler(seq, frame, 12, 3, 3, cut, seed=1))
    s.set_epoch(1)
    assert list(s) != batches


def test_errors_are_clear():
    seq, frame, _ = _table([4])
    with pytest.raises(ValueError, match="no sequence has 3 frames 3 apart"):
        SequenceBatchSampler(seq, frame, batch_size=6, n=3, interval=3)
    with pytest.raises(ValueError, match="smaller than n"):
        SequenceBatchSampler(seq, frame, batch_size=2, n=3, interval=1)
