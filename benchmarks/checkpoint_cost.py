"""Checkpoint cost at humanoid-dir sizes: incremental data files against one single file.

Buffers of humanoid-dir shapes (376-dim observations, 17-dim actions, 100 train tasks, 300-wide
networks with their Adam states) are filled to each size, checkpointed once, then given one
more iteration's data (5 tasks: 1,000 transitions each into the RL buffer, the 400-step prior
part again into the cleared encoder buffer) and checkpointed again. For that second checkpoint
it prints the seconds and bytes written, then the seconds to resume (a new process reading
the run folder back into new buffers) and each process's peak memory against the data stored:

  data files    the checkpoint of today: only the transitions added since the last one go to
                new files in RUN_DIR/buffers, checkpoint.pt holds the rest
  single file   the checkpoint before data files: the whole buffers inside checkpoint.pt

and the time of a sampling round (an RL batch and a context batch of 16 tasks) from the
chunked buffer against the same data in one flat array, and in 1 GiB chunks.
Each measurement runs in its own process, so the peak memory is that process's alone.

    python benchmarks/checkpoint_cost.py [--millions 0.25 0.5 1 2] [--folder F]
        [--only checkpoints|sampling]
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from machine import print_machine  # noqa: E402

from rlkit.core.checkpoint import (  # noqa: E402
    DATA_FOLDER,
    atomic_torch_save,
    buffer_data_reader,
    checkpoint_path,
    load_checkpoint,
    save_buffer_data,
)
from rlkit.data_management.multitask_replay_buffer import FIELDS, MultiTaskReplayBuffer  # noqa: E402
from rlkit.data_management.path import Path as Trajectory  # noqa: E402
from rlkit.launchers.config import load_config  # noqa: E402
from rlkit.launchers.launcher import build_trainer  # noqa: E402

OBS, ACT, TASKS = 376, 17, 100
PATH_LEN = 200  # humanoid-dir's max_path_length
INITIAL, PRIOR, EXTRA = 2000, 400, 600  # configs/humanoid-dir.json per task
META_BATCH, BATCH, CONTEXT = 16, 256, 256
BYTES_PER_TRANSITION = MultiTaskReplayBuffer(1, OBS, ACT, [0]).bytes_per_transition


def trajectory(rng: np.random.Generator, n: int = PATH_LEN) -> Trajectory:
    def f(*shape):
        return rng.standard_normal((n, *shape), dtype=np.float32)

    return Trajectory(f(OBS), f(ACT), f(), f(), f(OBS), np.zeros(n, np.float32), f())


def filled_buffers(millions: float, chunk_len: int | None = None, max_size: int = 1_000_000):
    """RL buffer with `millions` M transitions over the tasks, encoder buffer with the initial
    pool; the same few random trajectories over and over (the content does not matter)."""
    rng = np.random.default_rng(0)
    pool = [trajectory(rng) for _ in range(8)]
    rl = MultiTaskReplayBuffer(max_size, OBS, ACT, range(TASKS), chunk_len)
    enc = MultiTaskReplayBuffer(max_size, OBS, ACT, range(TASKS), chunk_len)
    per_task = int(millions * 1e6) // TASKS
    for task in range(TASKS):
        for k in range(per_task // PATH_LEN):
            rl.add_path(task, pool[k % len(pool)])
        for k in range(INITIAL // PATH_LEN):
            enc.add_path(task, pool[k % len(pool)])
    return rl, enc, pool


def networks_state() -> dict:
    """humanoid-dir's networks and Adam states after one step."""
    variant = load_config("configs/humanoid-dir.json")
    trainer = build_trainer(variant, OBS, ACT)
    optimizers = {k: v for k, v in vars(trainer).items() if isinstance(v, torch.optim.Optimizer)}
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = torch.zeros_like(p)
        optimizer.step()
    return {
        "networks": {name: net.state_dict() for name, net in trainer.networks.items()},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
    }


def one_iteration(rl: MultiTaskReplayBuffer, enc: MultiTaskReplayBuffer, pool) -> None:
    for task in range(5):
        enc.clear(task)
        for k in range(PRIOR // PATH_LEN):
            rl.add_path(task, pool[k])
            enc.add_path(task, pool[k])
        for k in range(EXTRA // PATH_LEN):
            rl.add_path(task, pool[k])


def single_file_state(buffer: MultiTaskReplayBuffer) -> dict:
    """What checkpoint.pt held of a buffer before data files: every transition."""
    data = {name: [] for name in FIELDS}
    for row, size in enumerate(buffer._size.tolist()):
        values = buffer._gather(np.array([row]), np.arange(size)[None]) if size else None
        for name in FIELDS:
            shape, dtype = buffer._fields[name]
            empty = np.zeros((0, *shape), dtype)
            data[name].append(torch.from_numpy(values[name][0] if size else empty))
    return {
        "max_size": buffer.max_size,
        "tasks": list(buffer.tasks),
        "top": torch.from_numpy(buffer._top.copy()),
        "size": torch.from_numpy(buffer._size.copy()),
        "data": data,
        "episodes": [torch.tensor(list(e)).reshape(-1, 2) for e in buffer._episodes],
    }


def written_bytes(run_dir: Path, before: set[Path]) -> int:
    files = [checkpoint_path(run_dir), *(run_dir / DATA_FOLDER).glob("*.pt")]
    return sum(p.stat().st_size for p in files if p not in before or p.name == "checkpoint.pt")


def save_data_files(run_dir: Path, buffers: dict, nets: dict, next_file: int) -> int:
    for name, buffer in buffers.items():
        next_file = save_buffer_data(run_dir, name, buffer, next_file)
    state = {**nets, **{name: b.state_dict() for name, b in buffers.items()}}
    atomic_torch_save(state, checkpoint_path(run_dir))
    return next_file


def save_single_file(run_dir: Path, buffers: dict, nets: dict) -> None:
    state = {**nets, **{name: single_file_state(b) for name, b in buffers.items()}}
    atomic_torch_save(state, checkpoint_path(run_dir))


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_gb() -> float:
    """The process's resident memory now (before the buffers: torch, the networks)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**30


def stored_gb(buffers: dict) -> float:
    return sum(int(b._size.sum()) * b.bytes_per_transition for b in buffers.values()) / 2**30


def child_save(method: str, millions: float, run_dir: Path) -> dict:
    nets = networks_state()
    base = rss_gb()
    rl, enc, pool = filled_buffers(millions)
    buffers = {"replay_buffer": rl, "enc_replay_buffer": enc}
    (run_dir / DATA_FOLDER).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    next_file = 0
    if method == "data files":
        next_file = save_data_files(run_dir, buffers, nets, next_file)
    else:
        save_single_file(run_dir, buffers, nets)
    first = time.perf_counter() - t0
    one_iteration(rl, enc, pool)
    before = set((run_dir / DATA_FOLDER).glob("*.pt"))
    t0 = time.perf_counter()
    if method == "data files":
        save_data_files(run_dir, buffers, nets, next_file)
    else:
        save_single_file(run_dir, buffers, nets)
    seconds = time.perf_counter() - t0
    return {
        "first_s": first,
        "save_s": seconds,
        "written_mb": written_bytes(run_dir, before) / 2**20,
        "stored_gb": stored_gb(buffers),
        "peak_gb": peak_gb(),
        "base_gb": base,
    }


def child_resume(run_dir: Path) -> dict:
    base = rss_gb()
    t0 = time.perf_counter()
    state = load_checkpoint(run_dir)
    buffers = {}
    for name in ("replay_buffer", "enc_replay_buffer"):
        buffers[name] = MultiTaskReplayBuffer(1_000_000, OBS, ACT, range(TASKS))
        buffers[name].load_state_dict(state[name], buffer_data_reader(run_dir, name))
    del state
    return {
        "resume_s": time.perf_counter() - t0,
        "stored_gb": stored_gb(buffers),
        "peak_gb": peak_gb(),
        "base_gb": base,
    }


def gather_before_chunks(buffer: MultiTaskReplayBuffer):
    """The gather of the layout before chunks: one (tasks, capacity, dim) array per field,
    indexed with rows and positions."""
    arrays = buffer._chunks[0]

    def gather(rows, idx):
        rows = np.broadcast_to(rows[:, None], idx.shape)
        return {name: arrays[name][rows, idx] for name in FIELDS}

    return gather


def sampling_ms(buffer: MultiTaskReplayBuffer, rounds: int = 100) -> float:
    rng = np.random.default_rng(1)
    tasks = rng.integers(TASKS, size=(rounds, META_BATCH))
    start = time.perf_counter()
    for r in range(rounds):
        buffer.random_batch(tasks[r], BATCH, rng)
        buffer.random_batch(tasks[r], CONTEXT, rng)
    return 1e3 * (time.perf_counter() - start) / rounds


def child_sample(millions: float, layout: str) -> dict:
    per_task = int(millions * 1e6) // TASKS
    if layout == "chunks":
        rl, _, _ = filled_buffers(millions)
    elif layout == "1 GiB chunks":  # as where the system gives less address space
        rl, _, _ = filled_buffers(millions, chunk_len=(1 << 30) // (TASKS * BYTES_PER_TRANSITION))
    else:  # each task's data exactly in one array per field, sampled as before chunks
        rl, _, _ = filled_buffers(millions, chunk_len=per_task, max_size=per_task)
        rl._gather = gather_before_chunks(rl)
    sampling_ms(rl, 10)  # warm up
    return {"sample_ms": sampling_ms(rl), "chunks": len(rl._chunks)}


def run_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--millions", type=float, nargs="+", default=[0.25, 0.5, 1, 2])
    parser.add_argument("--folder", type=Path, default=None, help="where the run folders go")
    parser.add_argument(
        "--only", choices=["checkpoints", "sampling"], help="one of the two measurements"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "save":
            result = child_save(rest[0], float(rest[1]), Path(rest[2]))
        elif kind == "resume":
            result = child_resume(Path(rest[0]))
        else:
            result = child_sample(float(rest[0]), rest[1])
        print(json.dumps(result))
        return

    print_machine()
    print(
        f"humanoid-dir shapes: obs {OBS}, action {ACT}, {TASKS} tasks, "
        f"{BYTES_PER_TRANSITION} bytes per transition; "
        "the checkpoint after one more iteration (5 tasks x 1,000 RL + 400 encoder transitions)"
    )
    if args.only != "sampling":
        print(
            "peak GB: the process's peak resident memory less what it held before the "
            "buffers (torch, the networks), against the data stored"
        )
        print(
            f"{'M transitions':>13} {'method':>12} {'stored GB':>9} {'write s':>8} "
            f"{'written MB':>11} {'resume s':>9} {'peak GB save':>12} {'peak GB resume':>14}"
        )
    root = Path(tempfile.mkdtemp(prefix="checkpoint-cost-", dir=args.folder))
    try:
        for millions in args.millions if args.only != "sampling" else []:
            for method in ("data files", "single file"):
                run_dir = root / f"{millions}-{method.replace(' ', '-')}"
                saved = run_child("save", method, str(millions), str(run_dir))
                resumed = run_child("resume", str(run_dir))
                print(
                    f"{millions:>13} {method:>12} {saved['stored_gb']:>9.2f} "
                    f"{saved['save_s']:>8.2f} {saved['written_mb']:>11.1f} "
                    f"{resumed['resume_s']:>9.2f} {saved['peak_gb'] - saved['base_gb']:>12.2f} "
                    f"{resumed['peak_gb'] - resumed['base_gb']:>14.2f}",
                    flush=True,
                )
                shutil.rmtree(run_dir)
        if args.only == "checkpoints":
            return
        print(f"\nsampling round ({META_BATCH} tasks: RL batch {BATCH} + context {CONTEXT}), ms")
        print(
            "(flat array: the layout before chunks; chunked: as a run makes it; 1 GiB chunks: "
            "as where less address space is given), best of 3 alternating"
        )
        layouts = ("flat", "chunks", "1 GiB chunks")
        print(f"{'M transitions':>13} " + " ".join(f"{f'{x} ms (chunks)':>22}" for x in layouts))
        for millions in args.millions:
            best = {}
            for _ in range(3):
                for layout in layouts:
                    got = run_child("sample", str(millions), layout)
                    old = best.get(layout, got)
                    best[layout] = got if got["sample_ms"] <= old["sample_ms"] else old
            cells = [f"{best[x]['sample_ms']:>15.2f} ({best[x]['chunks']:>3})" for x in layouts]
            print(f"{millions:>13} " + " ".join(cells), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
