"""Distributed training (DDP) under torchrun: 2 CPU processes with gloo train what one process trains.

Two torchrun launches of 2 processes share one run folder: the first is interrupted after its first epoch,
the second resumes from ``last.pt`` and also runs the embed step (rank 0 alone). Both launch this file as
the worker script (``python tests/test_ddp.py AUDIT RUN INTERRUPT -- <gallery_core CLI args>``), which runs
the product's CLI after installing an audit hook that records every file each rank creates, renames or
removes in the run folder, and, when asked, interrupts rank 0 after the resume file of an epoch is saved.

Tolerance: with the backbone's BatchNorm statistics frozen (``freeze_batchnorm``), 2 ranks x 4 galleries give
the per-epoch losses and task weights of 1 process x 8 galleries to a relative 1e-5 (measured: 5e-7 over
3 epochs: float sums in another order). With trainable BatchNorm on the CPU each rank normalises by its own
share of the batch (SyncBatchNorm has no CPU kernel in torch): see docs/architecture.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 2
RTOL = 1e-5


def _config():
    from conftest import tiny_config

    from gallery_core.config import BuildConfig

    data = tiny_config(max_epochs=EPOCHS, weighting="uncertainty").to_dict()
    data["model"]["freeze_batchnorm"] = True  # per-rank BatchNorm statistics would differ on the CPU
    return BuildConfig.from_dict(data).validate()


def _torchrun(audit: Path, run: Path, interrupt_epoch: int, cli_args: list[str]) -> subprocess.CompletedProcess:
    """Launch this file as the worker of 2 gloo processes through torchrun (``torch.distributed.run``)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               __file__, str(audit), str(run), str(interrupt_epoch), "--", *cli_args]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _writes(audit: Path, rank: int) -> list[list[str]]:
    path = audit / f"rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def ddp_run(tiny_catalogue, tmp_path_factory):
    """A DDP build (train + embed) of the tiny catalogue, interrupted after epoch 1 and resumed."""
    root = tmp_path_factory.mktemp("ddp")
    run, audit, config_file = root / "run", root / "audit", root / "config.yaml"
    audit.mkdir()
    config_file.write_text(yaml.safe_dump(_config().to_dict()))
    cli_args = ["build", "--steps", "train", "embed", "--catalogue", str(tiny_catalogue), "--out", str(run),
                "--config", str(config_file), "--device", "cpu"]
    interrupted = _torchrun(audit, run, 1, cli_args)
    resumed = _torchrun(audit, run, 0, cli_args)
    return {"run": run, "audit": audit, "interrupted": interrupted, "resumed": resumed}


def test_an_interrupted_ddp_run_resumes_from_its_last_epoch(ddp_run):
    interrupted, resumed = ddp_run["interrupted"], ddp_run["resumed"]
    assert interrupted.returncode != 0, interrupted.stdout[-2000:]
    assert "interrupted after epoch 1" in interrupted.stderr
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "resuming after epoch 1" in resumed.stdout
    log = [json.loads(line) for line in (ddp_run["run"] / "train_log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == list(range(1, EPOCHS + 1))
    manifest = json.loads((ddp_run["run"] / "manifest.json").read_text())
    assert set(manifest["steps"]) == {"train", "embed"}
    assert not (ddp_run["run"] / "last.pt").exists()  # removed once the train step was recorded


def test_ddp_trains_what_one_process_trains(ddp_run, tiny_catalogue, tmp_path):
    from gallery_core.data.catalogue import load_catalogue
    from gallery_core.training.loop import train

    assert ddp_run["resumed"].returncode == 0, ddp_run["resumed"].stderr[-4000:]
    # The DDP run's trunk cache (the same catalogue, backbone and size): no second pass over the photos.
    single = train(load_catalogue(tiny_catalogue), _config(), tmp_path / "single", device="cpu", progress=False,
                   cache_dir=ddp_run["run"] / "cache")
    ddp = [json.loads(line) for line in (ddp_run["run"] / "train_log.jsonl").read_text().splitlines()]
    assert len(ddp) == len(single.history) == EPOCHS
    for one, two in zip(single.history, ddp, strict=True):
        for key in ("train_task_losses", "val_task_losses", "task_weights"):
            assert one[key].keys() == two[key].keys()
            np.testing.assert_allclose(list(two[key].values()), list(one[key].values()), rtol=RTOL, err_msg=key)
        np.testing.assert_allclose([two["train_loss"], two["val_objective"]],
                                   [one["train_loss"], one["val_objective"]], rtol=RTOL)
    # The learned task weights moved (so their gradients were all-reduced, not left at their start).
    assert ddp[-1]["task_weights"] != ddp[0]["task_weights"]
    # The saved model is rank 0's, and it is the one process's model to the same tolerance.
    one_model = torch.load(tmp_path / "single" / "model.pt", weights_only=True)["model"]
    ddp_model = torch.load(ddp_run["run"] / "model.pt", weights_only=True)["model"]
    for name, tensor in one_model.items():
        np.testing.assert_allclose(ddp_model[name].float().numpy(), tensor.float().numpy(), rtol=1e-3, atol=1e-5,
                                   err_msg=name)


def test_only_rank_0_writes_in_the_run_folder(ddp_run):
    assert ddp_run["resumed"].returncode == 0, ddp_run["resumed"].stderr[-4000:]
    assert _writes(ddp_run["audit"], 1) == []
    written = {Path(event[-1]).name for event in _writes(ddp_run["audit"], 0)}
    # Rank 0 wrote every file (through atomic renames), the trunk cache and the embed step's too.
    assert {"model.pt", "last.pt", "train_log.jsonl", "manifest.json", "catalogue_report.json",
            "listing_embeddings.npy"} <= written
    assert any(name.startswith("trunk-") for name in written)


def test_a_batch_is_shared_out_among_the_ranks(monkeypatch):
    from gallery_core.training import distributed

    batch = np.arange(10, 17)  # 7 listings
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    shards = []
    for rank in range(3):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        shard, counted = distributed.batch_shard(batch)
        assert counted
        shards.append(shard)
    assert sorted(np.concatenate(shards).tolist()) == batch.tolist()  # disjoint, together the whole batch
    # A rank left without listings runs one (for the collective operations) and counts nothing.
    monkeypatch.setattr(distributed, "rank", lambda: 2)
    shard, counted = distributed.batch_shard(np.array([5, 6]))
    assert shard.tolist() == [5] and not counted


def test_scaled_rank_losses_average_to_the_gradient_of_one_process(tiny_catalogue, tmp_path, monkeypatch):
    """Two ranks simulated in this process: the mean of their gradients (what DDP all-reduces) equals the
    gradient of the whole batch in one process, the learned task weights' included, although the ranks see
    different numbers of labelled listings per task."""
    from functools import partial

    from conftest import tiny_config

    from gallery_core.data.catalogue import load_catalogue
    from gallery_core.models.checkpoint import build_model
    from gallery_core.training import distributed
    from gallery_core.training.data import label_tensors, prepare_data, regression_stats
    from gallery_core.training.loop import TrainStep, batch_losses
    from gallery_core.weighting import create_weighting

    config = tiny_config(weighting="uncertainty")
    catalogue = load_catalogue(tiny_catalogue)
    torch.manual_seed(0)
    model = build_model(config.model, catalogue.tasks)
    model.encoder.backbone.freeze_batchnorm = True  # batch statistics would differ between the shards
    cpu = torch.device("cpu")
    data = prepare_data(catalogue, model, config.model, tmp_path, "unused", False, cpu, progress=False)
    labels = label_tensors(data.catalogue)
    stats = regression_stats(data.catalogue, labels, np.arange(data.n_listings))
    weighting = create_weighting("uncertainty", data.catalogue.tasks, {k: v for k, (_, v) in stats.items()})
    step = TrainStep(model, weighting).train()
    batch = np.arange(16)
    losses_of = partial(batch_losses, data=data, labels=labels, device=cpu, objectives=None, training=True,
                        epoch=0, rng=None)

    def gradients(total: torch.Tensor) -> list[torch.Tensor]:
        step.zero_grad(set_to_none=True)
        total.backward()
        return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in step.parameters()]

    one_process = gradients(step(partial(losses_of, idx=batch))[0])

    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    shards, counts = [], []
    for rank in range(2):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        shard, _ = distributed.batch_shard(batch)
        shards.append(shard)
        counts.append([n for _, n in losses_of(model, idx=shard).values()])
    assert counts[0] != counts[1]  # some task has more labelled listings on one rank than on the other
    monkeypatch.setattr(distributed, "all_reduce_sum", lambda values: np.sum(counts, axis=0, dtype=np.float64))
    per_rank = [gradients(step(partial(losses_of, idx=shard))[0]) for shard in shards]
    for name_grad, one, a, b in zip(step.named_parameters(), one_process, *per_rank, strict=True):
        torch.testing.assert_close((a + b) / 2, one, rtol=1e-4, atol=1e-6, msg=name_grad[0])


# --- the worker torchrun launches ---

def _worker(audit: Path, run: Path, interrupt_epoch: int, cli_args: list[str]) -> int:
    rank = int(os.environ["RANK"])
    run_prefix = os.path.join(os.path.abspath(run), "")
    log_fd = os.open(audit / f"rank{rank}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def record(event: str, path) -> None:
        if isinstance(path, (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(path))
            if path.startswith(run_prefix):
                os.write(log_fd, (json.dumps([event, path]) + "\n").encode())  # os.write is not audited

    def hook(event: str, args: tuple) -> None:
        if event == "open" and len(args) >= 3:
            path, mode, flags = args[:3]
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else \
                bool((flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writes:
                record(event, path)
        elif event == "os.rename":  # os.replace raises it too: every atomic write ends with one
            record(event, args[1])
        elif event in ("os.remove", "os.mkdir", "os.rmdir", "os.truncate"):
            record(event, args[0])

    sys.addaudithook(hook)
    if interrupt_epoch and rank == 0:
        import gallery_core.training.loop as loop

        original_save = loop.save_checkpoint

        def save_then_interrupt(path, payload):
            original_save(path, payload)
            if path.name == "last.pt" and payload["epoch"] == interrupt_epoch:
                print(f"interrupted after epoch {interrupt_epoch}", file=sys.stderr, flush=True)
                raise SystemExit(75)

        loop.save_checkpoint = save_then_interrupt
    from gallery_core.cli import main

    return main(cli_args)


if __name__ == "__main__":
    args = sys.argv[1:]
    separator = args.index("--")
    sys.exit(_worker(Path(args[0]), Path(args[1]), int(args[2]), args[separator + 1:]))
