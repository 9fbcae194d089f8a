"""DistributedDataParallel training: two CPU processes (gloo) end an epoch with the weights one
process reaches on the same global batches, for a convolutional model and for a splat model with
pose consistency."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from napari_affinity_vae.cli import main
from napari_affinity_vae.model import distributed
from napari_affinity_vae.model.losses import Schedule
from napari_affinity_vae.model.network import AffinityVAE, Architecture
from napari_affinity_vae.model.train import TrainingConfig, TrainingData, training_epochs

# 15 boxes in batches of 8: global batches of 8 (4 + 4 per process) and 7 (4 + 3)
ARCHITECTURE = Architecture(box=8, depth=2, capacity=2, latent_dims=4, batch_norm=False)
SPLAT = dataclasses.replace(ARCHITECTURE, decoder="splat", pose_dims=4, splats=8)
MODELS = {  # name: architecture, pose consistency weight
    "conv": (ARCHITECTURE, 0.0),
    "splat": (SPLAT, 1.0),
}
CONFIG = TrainingConfig(
    epochs=1,
    batch_size=8,
    learning_rate=1e-2,
    beta=Schedule("flat", high=0.1),
    gamma=Schedule("flat", high=1.0),
    tc=Schedule("flat", high=0.5),
    validation_fraction=0.0,
)


def _data() -> TrainingData:
    rng = np.random.default_rng(1)
    affinity = np.array([[1.0, -0.5, 0.2], [-0.5, 1.0, 0.0], [0.2, 0.0, 1.0]])
    return TrainingData(
        boxes=rng.normal(size=(15, 8, 8, 8)).astype(np.float32),
        labels=np.arange(15) % 3,
        classes=["a", "b", "c"],
        affinity=affinity,
        voxel_size=10.0,
    )


def _trained(name: str) -> dict[str, torch.Tensor]:
    architecture, consistency = MODELS[name]
    torch.manual_seed(0)
    model = AffinityVAE(architecture)
    config = dataclasses.replace(CONFIG, pose=Schedule("flat", high=consistency))
    for epoch in training_epochs(_data(), model, config):
        assert np.isfinite(epoch.row["loss"])
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _process(rank: int, port: int, out: Path, name: str) -> None:
    dist.init_process_group("gloo", f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        weights = _trained(name)
        if rank == 0:
            torch.save(weights, out)
    finally:
        distributed.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch without torch.distributed")
@pytest.mark.parametrize("name", list(MODELS))
def test_two_processes_match_one_on_the_global_batch(tmp_path, name):
    out = tmp_path / "weights.pt"
    mp.spawn(_process, args=(_free_port(), out, name), nprocs=2)
    together = torch.load(out)
    alone = _trained(name)
    torch.manual_seed(0)
    start = AffinityVAE(MODELS[name][0]).state_dict()
    difference = max((together[k] - alone[k]).abs().max().item() for k in alone)
    moved = min((alone[k] - start[k]).abs().max().item() for k in alone)
    print(f"largest difference {difference:.2g}")
    assert difference < 1e-5
    assert moved > 1e-4  # an epoch changed every tensor: the comparison means something


def test_avae_train_distributed_under_torchrun(tmp_path):
    source, out = tmp_path / "set", tmp_path / "model"
    simulate = ["simulate", str(source), "--subtomograms", "6", "--box", "8", "--seed", "1"]
    assert main([*simulate, "--classes", "globular", "tetrahedral"]) == 0
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    launch += ["--master-port", str(_free_port()), "-m", "napari_affinity_vae.cli"]
    train = ["train", str(source), "--out", str(out), "--distributed", "--epochs", "1"]
    train += ["--batch-size", "4", "--depth", "1", "--capacity", "2", "--augment"]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(launch + train, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("model.safetensors") == 1  # the first process reports, alone
    assert out.with_suffix(".safetensors").exists()
    assert len(pd.read_csv(out.with_suffix(".metrics.csv"))) == 1
