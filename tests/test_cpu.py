"""CPU threads under a parallel DVC queue (s2hand.cpu.queue_jobs / cpu_share,
pipeline.common.share_threads): `dvc queue start -j N` must not start N x cores threads."""
import torch

from pipeline.common import share_threads
from s2hand.cpu import cpu_share, queue_jobs
from tests.conftest import tiny_params


def _proc(root, pid: int, *args: str) -> None:
    (root / str(pid)).mkdir()
    (root / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")


def test_queue_jobs_counts_the_live_queue_workers(tmp_path):
    assert queue_jobs(tmp_path / "absent") == 1
    assert queue_jobs(tmp_path) == 1
    _proc(tmp_path, 11, "/venv/bin/python", "/venv/bin/dvc", "exp", "queue-worker", "dvc-exp-0a1b2c-1@localhost", "--clean")
    _proc(tmp_path, 12, "/venv/bin/python", "/venv/bin/dvc", "exp", "queue-worker", "dvc-exp-0a1b2c-2@localhost")
    _proc(tmp_path, 13, "python", "-m", "pipeline.finetune_video")
    _proc(tmp_path, 14, "grep", "queue-worker")  # not a worker: no `exp`
    (tmp_path / "self").mkdir()
    assert queue_jobs(tmp_path) == 2


def test_cpu_share_divides_the_cores_and_never_gives_zero():
    assert cpu_share(2, 1) == 2 and cpu_share(2, 2) == 1 and cpu_share(2, 3) == 1 and cpu_share(16, 4) == 4
    assert cpu_share(8, 0) == 8


def test_a_stage_in_a_parallel_queue_takes_its_share_unless_the_params_set_threads():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        assert share_threads(tiny_params(), jobs=1) == 1 and torch.get_num_threads() == 4
        share_threads(tiny_params(), jobs=2)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(4)
        share_threads(tiny_params(train={"runtime": {"num_threads": 3}}), jobs=2)
        assert torch.get_num_threads() == 4  # the params' own setting is applied by the training loop
    finally:
        torch.set_num_threads(before)
