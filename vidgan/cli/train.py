"""`vidgan train MODEL ...`: one command, one sub-command per trainable model.

Trainers live with the command they belong to: any module of this package with
`register_train(train_sub)` adds its `vidgan train <name>` parser(s) there (and sets `func=`).
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    from . import command_modules

    t = sub.add_parser("train", help="train a model (GAN translators, de-identification, deepfake detector)",
                       description="Train one of vidgan's models. Every trainer writes checkpoints and resumes "
                       "from the last one with --resume.", formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = t.add_subparsers(dest="trainer", metavar="MODEL", required=True)
    for module in command_modules():
        if hasattr(module, "register_train"):
            module.register_train(tsub)
