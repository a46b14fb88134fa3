"""Which optional library features exist at run time, and the one place the GUI calls them.

The vault (reversible anonymization, `vidgan.vault`) and the deepfake scorer (`vidgan.deepfake`) are
being built alongside the app. The GUI shows their widgets only when the library has them, so the
window never offers something that cannot work. Each adapter below names the library calls it
expects; when a feature's API settles differently, only this module changes.

Expected library API (checked by name, not guessed at run time beyond that):

- `vidgan.keys.Passcode(text)` (`.check_policy()` when a vault is made): the passcode object;
- `vidgan.vault.VaultWriter(vault_path, passcode, VaultOptions(lossless=...))`: a
  `vidgan.pipeline.FrameObserver` that stores the covered regions, passed to
  `Pipeline.anonymize(observers=[...])`; `vidgan.vault.default_vault_path(output)`;
- `vidgan.vault.restore(anon_path=, vault_path=, output_path=, passcode=, progress=, cancel=)`.
- `vidgan.deepfake.score_video(path, progress=None, cancel=None)` -> dict with
  `fake_probability`, `verdict` and `frames: [{"time": s, "score": p}, ...]`.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Feature:
    available: bool
    reason: str  # why not, for a tooltip ("" when available)


def _module(name: str):
    try:
        if importlib.util.find_spec(name) is None:
            return None
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a half-written optional module must not break the app
        return None


def _feature(module_name: str, needed: tuple[str, ...], what: str) -> Feature:
    mod = _module(module_name)
    if mod is None:
        return Feature(False, f"{what} is not available in this version of vidgan ({module_name} is missing)")
    missing = [n for n in needed if not hasattr(mod, n)]
    if missing:
        return Feature(False, f"{what}: {module_name} lacks {', '.join(missing)} (this app is older or newer "
                              "than the library)")
    return Feature(True, "")


def vault() -> Feature:
    return _feature("vidgan.vault", ("VaultWriter", "restore"), "Passcode protection (vault)")


def deepfake() -> Feature:
    return _feature("vidgan.deepfake", ("score_video",), "Deepfake scoring")


def vault_path_for(output: str) -> str:
    mod = _module("vidgan.vault")
    fn = getattr(mod, "default_vault_path", None) if mod is not None else None
    return fn(output) if fn is not None else f"{output}.vault"


def passcode(text: str, check: bool = True):
    """The passcode as the library wants it: a `vidgan.keys.Passcode` (that passed its policy check
    when `check`; raises its one-line error, e.g. too short) where that module exists, else the text."""
    keys = _module("vidgan.keys")
    cls = getattr(keys, "Passcode", None) if keys is not None else None
    if cls is None:
        return text
    code = cls(text)
    return code.check_policy() if check and hasattr(code, "check_policy") else code


def vault_observer(output: str, passcode, lossless: bool = False, vault_path: Optional[str] = None):
    mod = importlib.import_module("vidgan.vault")
    path = vault_path or vault_path_for(output)
    options = getattr(mod, "VaultOptions", None)
    if options is not None:
        return mod.VaultWriter(path, passcode, options(lossless=lossless))
    return mod.VaultWriter(path, passcode)


def restore(video: str, vault_path: str, passcode, output: str, progress=None, cancel=None):
    mod = importlib.import_module("vidgan.vault")
    return mod.restore(anon_path=video, vault_path=vault_path, output_path=output, passcode=passcode,
                       progress=progress, cancel=cancel)


def score_video(path: str, progress=None, cancel=None) -> dict:
    mod = importlib.import_module("vidgan.deepfake")
    return mod.score_video(path, progress=progress, cancel=cancel)
