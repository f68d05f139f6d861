"""Which batches of a run's inputs one process completes: `--shard K/N` takes the K-th of N
parts, so that a scheduler's job array (Slurm, a Kubernetes Indexed Job) spreads a folder
over machines.

A run's batches are fixed by the whole input list, whatever the shard: batch b holds
inputs [b * batch_size, (b + 1) * batch_size). A shard is a run of whole consecutive
batches, so each batch is searched, and its files written, exactly as one run over all
the inputs would (the same images together, the same seeds, the same batch_NN/ folder):
N shards writing into one output folder make the files one run makes. K counts from 0,
as the schedulers' indices do (SLURM_ARRAY_TASK_ID with --array=0-(N-1),
JOB_COMPLETION_INDEX). With fewer batches than shards, the last shards have nothing to do.
"""
import re
from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class Shard:
    index: int  # K, from 0
    count: int  # N

    def __str__(self):
        return f"{self.index}/{self.count}"


WHOLE = Shard(0, 1)


def parse_shard(text):
    """`K/N` (0 <= K < N) as a Shard; a Shard passes through; None is the whole run."""
    if text is None:
        return WHOLE
    if isinstance(text, Shard):
        shard = text
    else:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not match:
            raise InputError(f"--shard must be K/N, the K-th of N parts counting from 0 (0/4 ... 3/4), "
                             f"got {text!r}")
        shard = Shard(int(match[1]), int(match[2]))
    if shard.count < 1 or not 0 <= shard.index < shard.count:
        raise InputError(f"--shard {shard}: K counts from 0 and must be below N (0/{max(shard.count, 1)} ... "
                         f"{max(shard.count, 1) - 1}/{max(shard.count, 1)})")
    return shard


def shard_batches(n_inputs, batch_size, shard=WHOLE):
    """The batches of `shard` as (batch number, first input, end): whole batches of the
    run over all `n_inputs`, consecutive, the N shards' counts differing by one at most."""
    n_batches = -(-n_inputs // batch_size)
    first = shard.index * n_batches // shard.count
    end = (shard.index + 1) * n_batches // shard.count
    return [(b, b * batch_size, min((b + 1) * batch_size, n_inputs)) for b in range(first, end)]
