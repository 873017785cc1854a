"""``python -m srbench.training train|ablate ...`` -- a minimal front end for ``torchrun``.

``srbench train`` / ``srbench ablate`` are the documented commands; this module gives the same
functions an entry point that ``torchrun`` can start directly::

    torchrun --nproc_per_node 2 -m srbench.training train default --device cuda
"""

from __future__ import annotations

import argparse
import sys

from srbench.errors import SRBenchError


def main(argv: list[str] | None = None) -> int:
    from srbench.training.cli import ablate_command, err_console, train_command
    from srbench.training.recipe import parse_overrides

    parser = argparse.ArgumentParser(prog="python -m srbench.training")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-root")
    common.add_argument("--output-dir", default="runs")
    common.add_argument("--device", default="cpu")
    common.add_argument("--iterations", type=int)
    common.add_argument("--compile", action="store_true")
    common.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    train = sub.add_parser("train", parents=[common], help="train one recipe")
    train.add_argument("recipe")
    train.add_argument("--model")
    train.add_argument("--scale", type=int)
    train.add_argument("--resume", action="store_true")
    train.add_argument("--benchmark", action="store_true")
    ablate = sub.add_parser("ablate", parents=[common], help="train and score an ablation grid")
    ablate.add_argument("spec")
    ablate.add_argument("--results-dir", default="results")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
        if args.command == "train":
            train_command(
                args.recipe,
                model=args.model,
                scale=args.scale,
                iterations=args.iterations,
                data_root=args.data_root,
                output_dir=args.output_dir,
                resume=args.resume,
                device=args.device,
                benchmark=args.benchmark,
                compile=args.compile,
                overrides=overrides,
            )
        else:
            ablate_command(
                args.spec,
                data_root=args.data_root,
                output_dir=args.output_dir,
                results_dir=args.results_dir,
                device=args.device,
                iterations=args.iterations,
                compile=args.compile,
                overrides=overrides,
            )
    except SRBenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
