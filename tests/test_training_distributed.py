"""Two gloo processes on CPU train the tiny model for two steps and end with identical weights."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp
from training_fixtures import train_briefly

from melscribe_torch.models import BiEncoder
from melscribe_torch.training.distributed import cleanup, gather_objects, init_distributed

EXAMPLES = [
    (f"i want {w} music", f"{w}, guitar", "jazz, slow tempo", float(i))
    for i, w in enumerate(["rock", "pop", "calm", "sad", "happy", "loud", "soft", "piano"])
]


def worker(rank: int, world_size: int, port: int, model_dir: str, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    torch.set_num_threads(1)
    # CPU ranks, also where CUDA is present (nccl would refuse the CPU tensors).
    got_rank, got_world, _ = init_distributed(cuda=False)
    assert (got_rank, got_world) == (rank, world_size)
    model = BiEncoder.from_pretrained(model_dir, device="cpu")
    if rank == 1:  # a different start: rank 0's weights must be broadcast
        with torch.no_grad():
            next(model.parameters()).add_(1.0)
    train_briefly(model, EXAMPLES, steps=2, batch_size=2, rank=rank, world_size=world_size)
    assert gather_objects(rank) == [0, 1]
    torch.save(model.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_keep_identical_parameters(tiny_model_dir, tmp_path):
    mp.spawn(worker, args=(2, free_port(), str(tiny_model_dir), str(tmp_path)), nprocs=2, join=True)
    states = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    torch.testing.assert_close(states[0], states[1], rtol=0, atol=0)
    initial = BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu").state_dict()
    assert any(not torch.equal(states[0][k], initial[k]) for k in initial)  # they did train
