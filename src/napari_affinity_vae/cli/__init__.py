"""The ``avae`` command line: the same pipeline as the napari widgets, without a screen."""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Sequence

from napari_affinity_vae import __version__
from napari_affinity_vae.cli.affinity import add_affinity
from napari_affinity_vae.cli.embed import add_embed, add_project
from napari_affinity_vae.cli.outputs import Cancelled
from napari_affinity_vae.cli.pick import add_pick
from napari_affinity_vae.cli.simulate import add_demo, add_simulate
from napari_affinity_vae.cli.train import add_evaluate, add_train
from napari_affinity_vae.errors import AffinityVAEError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avae",
        description="Explore cryo-ET tomograms through the latent space of an affinity-VAE.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_demo(commands)
    add_simulate(commands)
    add_affinity(commands)
    add_train(commands)
    add_evaluate(commands)
    add_pick(commands)
    add_embed(commands)
    add_project(commands)
    return parser


def reference(width: int = 100) -> str:
    """The help of ``avae`` and of each command as Markdown (docs/cli.md is made from it)."""
    import os
    from unittest import mock

    with mock.patch.dict(os.environ, {"COLUMNS": str(width)}):
        parser = build_parser()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parts = [
            "# Command-line reference\n",
            "Generated from the program by `python scripts/make_cli_docs.py`; "
            "`avae COMMAND --help` prints the same.\n",
            f"```text\n{parser.format_help()}```\n",
        ]
        for name, sub in commands.choices.items():
            parts.append(f"## avae {name}\n\n```text\n{sub.format_help()}```\n")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()  # imports torch: seconds, which Ctrl-C may cut short
    except KeyboardInterrupt:
        print("avae: cancelled", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    args.command_line = "avae " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(_show_warning, args.command)
            return args.run(args)
    except AffinityVAEError as err:
        print(f"avae {args.command}: error: {err}", file=sys.stderr)
        for note in getattr(err, "__notes__", ()):
            print(f"avae {args.command}: {note}", file=sys.stderr)
        return 2
    except Cancelled as cancelled:
        print(f"avae {args.command}: cancelled; {cancelled}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"avae {args.command}: cancelled; no partial files were left", file=sys.stderr)
        return 130


def _show_warning(command: str, message: Warning | str, *_args: object, **_kwargs: object) -> None:
    """A warning as one line on stderr, like the errors: ``avae CMD: warning: ...``."""
    print(f"avae {command}: warning: {message}", file=sys.stderr)
