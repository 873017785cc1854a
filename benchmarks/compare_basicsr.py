"""srbench's end-to-end bicubic run against BasicSR 1.4.2's functions, on the same images.

    pip install --no-deps --target /tmp/basicsr-site basicsr==1.4.2 opencv-python-headless
    python benchmarks/compare_basicsr.py --basicsr /tmp/basicsr-site --data-root DATA \
        [--datasets set14,b100] [--scales 2,3,4] [--repeats 3] [--load-threads 2] \
        [--output results.json]

Both sides do the same work per HR image and scale: modcrop, MATLAB-bicubic downscale, bicubic
upscale, uint8 rounding, PSNR and SSIM on BT.601 Y with a ``scale``-pixel border cropped.
srbench is timed as ``srbench run --models bicubic`` does it (library call into an empty store,
cold LR cache, image decoding and fingerprint verification included; the code-hash cache is
warm, as after any earlier run of the same code); BasicSR as its own test
scripts use it (``imresize``, ``calculate_psnr``/``calculate_ssim`` with ``test_y_channel``,
``cv2.imread``). Every timing runs in a fresh subprocess with the default thread settings (no
``*_NUM_THREADS`` variables), the two tools alternate, and the medians are compared. Each repeat
runs both tools twice: on the machine as it is ("idle": say in the report whether it was) and
beside a competing CPU load this script starts itself (``--load-threads`` torch threads of
back-to-back 512x512 matrix products, like a training job on every core; 0 skips it); the
conditions alternate, and a speedup is reported for each. One untimed run of each tool comes
first (it warms the page cache for both, and srbench's code-hash cache). BasicSR is
imported from ``--basicsr`` without running its package ``__init__`` (which would import its whole
training stack); only ``utils/matlab_functions.py`` and ``metrics/psnr_ssim.py`` are used.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def _srbench(data_root: str, datasets: list[str], scales: list[int], work: str) -> dict:
    import shutil
    import tempfile

    cache = Path(work) / "cache"
    shutil.rmtree(cache / "lr", ignore_errors=True)  # cold LR cache; code-hash cache kept
    os.environ["SRBENCH_CACHE"] = str(cache)
    from srbench.runner import RunConfig, run
    from srbench.sources import benchmark_source

    start = time.perf_counter()
    sources = [benchmark_source(d, Path(data_root)) for d in datasets]
    config = RunConfig(
        models=["bicubic"],
        datasets=datasets,
        scales=scales,
        results_dir=Path(tempfile.mkdtemp(dir=work)),
        crops=False,
        count_costs=False,
    )
    records = run(config, sources)
    seconds = time.perf_counter() - start
    psnr = statistics.fmean(r["psnr_db"] for r in records)
    threads = sorted({r["torch_threads"] for r in records})
    return {"seconds": seconds, "images": len(records), "mean_psnr_db": psnr, "threads": threads}


def _basicsr(basicsr: str, data_root: str, datasets: list[str], scales: list[int]) -> dict:
    import importlib.util
    import types

    def load(name: str, path: Path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    root = Path(basicsr) / "basicsr"
    for pkg in ("basicsr", "basicsr.utils", "basicsr.metrics"):  # namespaces without __init__
        module = types.ModuleType(pkg)
        module.__path__ = [str(root / pkg.partition(".")[2].replace(".", "/"))]
        sys.modules[pkg] = module
    sys.path.append(basicsr)  # its cv2 (the stubs above keep basicsr's __init__ from running)
    color = load("basicsr.utils.color_util", root / "utils" / "color_util.py")
    sys.modules["basicsr.utils"].bgr2ycbcr = color.bgr2ycbcr  # what its __init__ re-exports
    matlab = load("basicsr.utils.matlab_functions", root / "utils" / "matlab_functions.py")
    metrics = load("basicsr.metrics.psnr_ssim", root / "metrics" / "psnr_ssim.py")
    import cv2
    import numpy as np

    from srbench.data import find_image_file, get_benchmark, hr_folder

    start = time.perf_counter()
    values = []
    for key in datasets:
        spec = get_benchmark(key)
        folder = hr_folder(spec, Path(data_root))
        for image in spec.images:
            path = find_image_file(folder, image.name)
            hr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if hr.ndim == 2:
                hr = np.repeat(hr[..., None], 3, axis=2)
            for s in scales:
                h, w = hr.shape[0] - hr.shape[0] % s, hr.shape[1] - hr.shape[1] % s
                gt = hr[:h, :w]
                lr = matlab.imresize(gt.astype(np.float64) / 255.0, 1 / s)
                lr = np.clip(np.round(lr * 255.0), 0, 255) / 255.0  # a uint8 LR, as srbench's
                sr = matlab.imresize(lr, s)
                sr = np.clip(np.round(sr * 255.0), 0, 255).astype(np.uint8)
                values.append(metrics.calculate_psnr(sr, gt, s, test_y_channel=True))
                metrics.calculate_ssim(sr, gt, s, test_y_channel=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images": len(values), "mean_psnr_db": statistics.fmean(values)}


LOAD_CODE = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
a = torch.rand(512, 512)
print("ready", flush=True)
while True:
    a = torch.tanh(a @ a)
"""


class CompetingLoad:
    """A process keeping ``threads`` cores busy with torch matrix products while in the block."""

    def __init__(self, threads: int):
        self.threads, self.process = threads, None

    def __enter__(self) -> CompetingLoad:
        if self.threads > 0:
            cmd = [sys.executable, "-c", LOAD_CODE, str(self.threads)]
            self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            self.process.stdout.readline()  # wait until it computes
            time.sleep(1.0)  # and the scheduler sees it
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


def _time_once(tool: str, args: argparse.Namespace, work: str, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", tool, "--work", work]
    cmd += ["--basicsr", args.basicsr, "--data-root", args.data_root]
    cmd += ["--datasets", args.datasets, "--scales", args.scales]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["load_average_1min"] = round(os.getloadavg()[0], 2)
    return out


def _child(args: argparse.Namespace) -> None:
    datasets, scales = args.datasets.split(","), [int(s) for s in args.scales.split(",")]
    if args.child == "srbench":
        out = _srbench(args.data_root, datasets, scales, args.work)
    else:
        out = _basicsr(args.basicsr, args.data_root, datasets, scales)
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--basicsr", required=True, help="folder holding the basicsr package")
    parser.add_argument("--data-root", default=os.environ.get("SRBENCH_DATA"))
    parser.add_argument("--datasets", default="set14,b100")
    parser.add_argument("--scales", default="2,3,4")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load-threads", type=int, default=2, help="competing load (0: none)")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--child", choices=("srbench", "basicsr"), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    if not args.data_root:
        parser.error("--data-root (or $SRBENCH_DATA) is required")
    import platform
    import tempfile

    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    conditions = ["idle", "loaded"] if args.load_threads > 0 else ["idle"]
    times = {c: {"srbench": [], "basicsr": []} for c in conditions}
    with tempfile.TemporaryDirectory() as work:
        warmup = {tool: _time_once(tool, args, work, env) for tool in ("srbench", "basicsr")}
        print("warm-up", warmup, file=sys.stderr)
        for _ in range(args.repeats):
            for condition in conditions:
                with CompetingLoad(args.load_threads if condition == "loaded" else 0):
                    for tool, runs in times[condition].items():
                        runs.append(_time_once(tool, args, work, env))
                        print(condition, tool, runs[-1], file=sys.stderr)
    from srbench.provenance import environment

    result = {
        "workload": f"bicubic x{args.scales} on {args.datasets}, end to end",
        "threads": "default (no *_NUM_THREADS variables, no --threads)",
        "competing_load": f"{args.load_threads} torch threads of 512x512 matmuls (loaded only)",
        "cpu": environment("cpu")["cpu_model"],
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "warmup_untimed": warmup,
        "runs": times,
    }
    for condition, by_tool in times.items():
        median = {t: statistics.median(r["seconds"] for r in rs) for t, rs in by_tool.items()}
        result[condition] = {
            "median_seconds": median,
            "speedup_srbench_over_basicsr": median["basicsr"] / median["srbench"],
            "mean_psnr_db": {t: rs[0]["mean_psnr_db"] for t, rs in by_tool.items()},
        }
    text = json.dumps(result, indent=1)
    if args.output:
        args.output.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
