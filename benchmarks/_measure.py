"""Run a Python module or script as `python -m` / `python script` would, and write its wall time
(from interpreter start-up, imports included) and peak resident memory to a JSON file at exit.

    python benchmarks/_measure.py OUT.json -m bench run ...
    python benchmarks/_measure.py OUT.json path/to/script.py --arg ...
"""

import atexit
import json
import resource
import runpy
import sys
import time

START = time.perf_counter()


def _write(path: str) -> None:
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    info = {"seconds": time.perf_counter() - START, "peak_rss_mib": peak_kib / 1024}
    try:  # GPU memory too, when the workload used a GPU
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            info["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
            info["peak_gpu_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    except ImportError:
        pass
    with open(path, "w") as f:
        json.dump(info, f)


def main() -> None:
    out, *command = sys.argv[1:]
    atexit.register(_write, out)
    if command[0] == "-m":
        sys.argv = [command[1], *command[2:]]
        runpy.run_module(command[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = command
        runpy.run_path(command[0], run_name="__main__")


if __name__ == "__main__":
    main()
