"""Measure `dcgan-complete` on many inputs: wall time, images per second and peak resident
memory for each input count, and the cost of an input beyond the search.

Each count gets a folder of that many aligned faces (symbolic links to the faces of
--faces, cycled, under names of their own), and the tool runs on it in a process of its
own, as a user runs it: `dcgan-complete FOLDER --outDir OUT --nIter 0` by default, so
that it measures everything but the search (reading, masks, one forward pass of G and D,
grids, logs, writing). Peak RSS is the process's own (wait4). The cost of an input is the
difference in wall time between two counts divided by the difference in inputs, so that
start-up (loading TensorFlow and the model) drops out; the same for CPU time (user +
system, all threads), which a busy machine disturbs less than wall time.

    python scripts/bench_scale.py --faces /data/celeba64 [--counts 1000 5000 20000]
        [--n-iter 0] [--repeats 1] [--baseline CHECKOUT] [--work /tmp/bench_scale] [-- TOOL FLAGS]

--baseline CHECKOUT runs the same commands with the package of another checkout too
(e.g. `git archive COMMIT | tar -x -C /tmp/old`), alternating with this one, and prints
the ratio of the costs of an input, old over new.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def input_folder(faces, count, work):
    """A folder of `count` links to the faces of `faces` (cycled), made once and reused."""
    folder = work / f"inputs_{count}"
    if folder.is_dir() and len(os.listdir(folder)) == count:
        return folder
    sources = sorted(p for p in Path(faces).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not sources:
        sys.exit(f"bench_scale: {faces} holds no .png/.jpg images")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for k in range(count):
        source = sources[k % len(sources)].resolve()
        os.symlink(source, folder / f"{k:07d}{source.suffix.lower()}")
    return folder


def run_tool(checkout, folder, out_dir, n_iter, extra):
    """(wall seconds, CPU seconds, peak RSS in bytes) of one run of dcgan-complete from `checkout`
    (None: the installed package)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    env = dict(os.environ)
    if checkout is not None:  # ahead of the installed (editable) package
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(checkout), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "dcgan_completion.cli.complete", str(folder), "--outDir", str(out_dir),
               "--nIter", str(n_iter), *extra]
    start = time.perf_counter()
    # Started in the work folder: `python -m` puts the current folder first on sys.path,
    # where a checkout's package would shadow the baseline's.
    process = subprocess.Popen(command, env=env, cwd=out_dir.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"bench_scale: {' '.join(command)} failed:\n{stderr.decode(errors='replace')[-2000:]}")
    shutil.rmtree(out_dir, ignore_errors=True)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024  # Linux reports kilobytes


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--faces", required=True, help="a folder of aligned 64x64 faces")
    p.add_argument("--counts", type=int, nargs="+", default=[1000, 5000, 20000])
    p.add_argument("--n-iter", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="runs of each command; the fastest counts")
    p.add_argument("--baseline", default=None, help="a checkout of the old code to compare with")
    p.add_argument("--work", default="/tmp/bench_scale", help="where the input folders and outputs go")
    p.add_argument("extra", nargs="*", help="more dcgan-complete flags (after --)")
    args = p.parse_args()
    work = Path(args.work)
    codes = [("this", None)] + ([("baseline", Path(args.baseline).resolve())] if args.baseline else [])
    results = {}
    for count in args.counts:
        folder = input_folder(args.faces, count, work)
        for _ in range(args.repeats):
            for name, checkout in codes:  # alternating, so that both see the same machine
                wall, cpu, rss = run_tool(checkout, folder, work / "out", args.n_iter, args.extra)
                best = results.get((name, count))
                results[(name, count)] = (min(wall, best[0]), min(cpu, best[1]), max(rss, best[2])) if best else (
                    wall, cpu, rss)
    print(f"dcgan-complete FOLDER --nIter {args.n_iter} {' '.join(args.extra)}".rstrip())
    print(f"{'code':<9} {'inputs':>7} {'wall s':>8} {'images/s':>9} {'peak RSS MB':>12} {'ms an input':>12} "
          f"{'CPU s':>7} {'CPU ms an input':>16}")
    for name, _ in codes:
        previous = None
        for count in args.counts:
            wall, cpu, rss = results[(name, count)]
            marginal, cpu_marginal = ("", "") if previous is None else (
                f"{1000 * (wall - previous[1]) / (count - previous[0]):.2f}",
                f"{1000 * (cpu - previous[2]) / (count - previous[0]):.2f}")
            print(f"{name:<9} {count:>7} {wall:>8.1f} {count / wall:>9.1f} {rss / 2**20:>12.0f} {marginal:>12} "
                  f"{cpu:>7.1f} {cpu_marginal:>16}")
            previous = (count, wall, cpu)
    if args.baseline and len(args.counts) > 1:
        first, last = args.counts[0], args.counts[-1]

        def per_input(name, column):
            return (results[(name, last)][column] - results[(name, first)][column]) / (last - first)

        for what, column in (("wall time", 0), ("CPU time", 1)):
            old, new = per_input("baseline", column), per_input("this", column)
            print(f"{what} of an input beyond start-up ({first} to {last} inputs): baseline {1000 * old:.2f} ms, "
                  f"this {1000 * new:.2f} ms, ratio {old / new:.2f}x")


if __name__ == "__main__":
    main()
