"""Passcodes and the keys derived from them (for the vault, see vault.py and docs/vault-format.md).

A passcode comes from a file (`--passcode-file`), an environment variable (`--passcode-env`) or an
interactive prompt (`--passcode-prompt`, asked twice when a vault is made) — never from a plain
command-line value, which would land in shell history and process listings. It is held in a
`Passcode` object whose repr hides it; it is never written to disk, to a report or to the log.

Key derivation: Argon2id (RFC 9106, second recommended setting: 64 MiB, 3 passes, 4 lanes) or scrypt,
both from the `cryptography` package, with a random 16-byte salt per vault. The parameters are stored
in the vault header, so later defaults can change without breaking old vaults. The 32-byte result is
the vault's master key; HKDF-SHA256 derives the AEAD key from it (`subkey`), so one passcode-derived
secret never keys two different things.
"""

from __future__ import annotations

import getpass
import os
import struct
import unicodedata
from dataclasses import dataclass
from typing import Callable, Optional

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import UsageError

MIN_PASSCODE_CHARS = 8
KEY_BYTES = 32
SALT_BYTES = 16

KDF_ARGON2ID = 1
KDF_SCRYPT = 2
_KDF_NAMES = {KDF_ARGON2ID: "argon2id", KDF_SCRYPT: "scrypt"}

# What a vault header may ask for. Anything outside is refused before any work is done, so a damaged
# (or hostile) header cannot make us allocate terabytes or spin for hours.
ARGON2_MEMORY_KIB = (8, 1024 * 1024)  # 8 KiB .. 1 GiB
ARGON2_ITERATIONS = (1, 16)
ARGON2_LANES = (1, 16)
SCRYPT_LOG2_N = (10, 22)
SCRYPT_R = (1, 16)
SCRYPT_P = (1, 4)
SCRYPT_MAX_BYTES = 1024 ** 3  # 128 * r * N, the memory scrypt needs


class PasscodeError(UsageError):
    """The passcode could not be obtained or is too weak (exit code 2: fix the command)."""


class Passcode:
    """A passcode in memory. NFC-normalised (the same passcode typed on any system gives the same
    key), compared and used as UTF-8. `repr`/`str` never show it."""

    __slots__ = ("_text",)

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise TypeError("Passcode takes a str")
        self._text = unicodedata.normalize("NFC", text)

    def encode(self) -> bytes:
        return self._text.encode("utf-8")

    def __len__(self) -> int:
        return len(self._text)

    def __eq__(self, other) -> bool:
        return isinstance(other, Passcode) and other._text == self._text

    def __hash__(self) -> int:  # pragma: no cover - not meant as a dict key, but keep it consistent
        return hash(("Passcode", len(self._text)))

    def __repr__(self) -> str:
        return "Passcode(<hidden>)"

    __str__ = __repr__

    def __reduce__(self):  # never pickled into a worker's arguments or a report by accident
        raise TypeError("a Passcode cannot be pickled")

    def check_policy(self, allow_weak: bool = False) -> "Passcode":
        """Refuse an empty passcode always, and one shorter than 8 characters unless `allow_weak`."""
        if not self._text:
            raise PasscodeError("the passcode is empty")
        if len(self._text) < MIN_PASSCODE_CHARS and not allow_weak:
            raise PasscodeError(f"passcode too short ({len(self._text)} characters; at least "
                                f"{MIN_PASSCODE_CHARS} needed, or pass --allow-weak-passcode)")
        return self


def passcode_from_file(path: str) -> Passcode:
    """The whole file as UTF-8, minus one trailing newline ("\\n" or "\\r\\n") if there is one."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 16)
    except FileNotFoundError:
        raise PasscodeError("passcode file not found", path) from None
    except IsADirectoryError:
        raise PasscodeError("passcode file is a folder", path) from None
    except OSError as exc:
        raise PasscodeError(f"cannot read the passcode file: {exc.strerror or exc}", path) from None
    if len(data) >= 1 << 16:
        raise PasscodeError("passcode file is too large (64 KiB at most)", path)
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PasscodeError("passcode file is not UTF-8 text", path) from None
    if not text:
        raise PasscodeError("passcode file is empty", path)
    return Passcode(text)


def passcode_from_env(name: str, environ: Optional[dict] = None) -> Passcode:
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value is None:
        raise PasscodeError(f"environment variable {name} is not set")
    if not value:
        raise PasscodeError(f"environment variable {name} is empty")
    return Passcode(value)


def passcode_from_prompt(confirm: bool, getpass_fn: Optional[Callable[[str], str]] = None) -> Passcode:
    """Ask on the terminal (no echo); with `confirm`, ask twice and require the same answer."""
    getpass_fn = getpass_fn or getpass.getpass
    try:
        first = getpass_fn("vidgan passcode: ")
        if confirm:
            again = getpass_fn("vidgan passcode (again): ")
            if Passcode(again) != Passcode(first):
                raise PasscodeError("the two passcodes differ")
    except (EOFError, KeyboardInterrupt):
        raise PasscodeError("no passcode entered") from None
    if not first:
        raise PasscodeError("no passcode entered")
    return Passcode(first)


def get_passcode(file: Optional[str] = None, env: Optional[str] = None, prompt: bool = False, *,
                 confirm: bool = False, getpass_fn: Optional[Callable[[str], str]] = None) -> Passcode:
    """Exactly one of `file`, `env`, `prompt`."""
    if (file is not None) + (env is not None) + bool(prompt) != 1:
        raise PasscodeError("give exactly one of --passcode-file, --passcode-env, --passcode-prompt")
    if file is not None:
        return passcode_from_file(file)
    if env is not None:
        return passcode_from_env(env)
    return passcode_from_prompt(confirm, getpass_fn)


# -- key derivation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class KdfParams:
    """Which KDF and its cost. Packed into the vault header as (id u8, p1 u32, p2 u32, p3 u32):
    argon2id: memory KiB, iterations, lanes; scrypt: log2 N, r, p."""

    kind: int = KDF_ARGON2ID
    p1: int = 64 * 1024
    p2: int = 3
    p3: int = 4

    @staticmethod
    def argon2id(memory_kib: int = 64 * 1024, iterations: int = 3, lanes: int = 4) -> "KdfParams":
        return KdfParams(KDF_ARGON2ID, memory_kib, iterations, lanes)

    @staticmethod
    def scrypt(log2_n: int = 17, r: int = 8, p: int = 1) -> "KdfParams":
        return KdfParams(KDF_SCRYPT, log2_n, r, p)

    @property
    def name(self) -> str:
        return _KDF_NAMES.get(self.kind, f"unknown({self.kind})")

    def describe(self) -> str:
        if self.kind == KDF_ARGON2ID:
            return f"argon2id m={self.p1} KiB t={self.p2} p={self.p3}"
        if self.kind == KDF_SCRYPT:
            return f"scrypt N=2^{self.p1} r={self.p2} p={self.p3}"
        return self.name

    def check(self) -> None:
        """ValueError when the parameters are unknown or outside the accepted bounds."""
        def within(v, bounds, what):
            if not bounds[0] <= v <= bounds[1]:
                raise ValueError(f"{self.name} {what} {v} outside [{bounds[0]}, {bounds[1]}]")

        if self.kind == KDF_ARGON2ID:
            within(self.p1, ARGON2_MEMORY_KIB, "memory")
            within(self.p2, ARGON2_ITERATIONS, "iterations")
            within(self.p3, ARGON2_LANES, "lanes")
            if self.p1 < 8 * self.p3:
                raise ValueError("argon2id memory must be at least 8 KiB per lane")
        elif self.kind == KDF_SCRYPT:
            within(self.p1, SCRYPT_LOG2_N, "log2 N")
            within(self.p2, SCRYPT_R, "r")
            within(self.p3, SCRYPT_P, "p")
            if 128 * self.p2 * (1 << self.p1) > SCRYPT_MAX_BYTES:
                raise ValueError("scrypt parameters need too much memory")
        else:
            raise ValueError(f"unknown key derivation function id {self.kind}")

    def pack(self) -> bytes:
        return struct.pack(">BIII", self.kind, self.p1, self.p2, self.p3)

    @staticmethod
    def unpack(data: bytes) -> "KdfParams":
        kind, p1, p2, p3 = struct.unpack(">BIII", data)
        return KdfParams(kind, p1, p2, p3)


PACKED_KDF_BYTES = struct.calcsize(">BIII")

DEFAULT_KDF = KdfParams.argon2id()


def derive_key(passcode: Passcode, salt: bytes, params: KdfParams = DEFAULT_KDF) -> bytes:
    """The 32-byte master key for `passcode` and `salt` (slow on purpose)."""
    params.check()
    if len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes")
    secret = passcode.encode()
    if params.kind == KDF_ARGON2ID:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        kdf = Argon2id(salt=salt, length=KEY_BYTES, iterations=params.p2, lanes=params.p3,
                       memory_cost=params.p1)
    else:
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        kdf = Scrypt(salt=salt, length=KEY_BYTES, n=1 << params.p1, r=params.p2, p=params.p3)
    return kdf.derive(secret)


def subkey(master: bytes, info: bytes, length: int = KEY_BYTES) -> bytes:
    """HKDF-SHA256 expansion of the master key for one purpose (`info` names it)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)
