r"""Nix derivations: the ATerm ``.drv`` format, its store path, and its output paths.

A ``.drv`` file is one term::

    Derive([("out","/nix/store/...-x","",""),...],     outputs: name, path, hash algorithm, hash
           [("/nix/store/...-y.drv",["out"]),...],     input derivations and the outputs used
           ["/nix/store/...-src",...],                 input sources
           "x86_64-linux","/bin/sh",["-c","..."],      platform, builder, arguments
           [("name","x"),...])                         environment

(on one line, without spaces). Builder, arguments and environment are written
with the escapes ``\" \\ \n \r \t``; the other strings are written as they
are, so they may not hold ``"`` or ``\``. Nix sorts every list but the
arguments; :func:`format_derivation` does the same, so it reproduces a file
Nix wrote byte for byte.

A derivation's own path is a text path (``text:<refs>``) of its ATerm, with
its input sources and input derivations as references. Its output paths come
from ``hashDerivationModulo``: a fixed-output derivation hashes to
``sha256("fixed:out:<[r:]algo>:<hex>:<path>")``; any other derivation to the
SHA-256 of its ATerm in which each input derivation's path is replaced by the
hex of that input's own modulo hash. For an input-addressed derivation's
outputs the ATerm is hashed with the output paths, and the environment
variables named after the outputs, blanked.

Nix strings are bytes: a ``.drv`` may hold any bytes in its strings (Nix
writes Latin-1 or CP1252 text from a ``.nix`` file as it is). Bytes that are
not UTF-8 are kept as lone surrogates (Python's ``surrogateescape``), so a
file reads into ``str`` fields and writes back byte for byte; hashing uses the
same bytes (:func:`derivation_bytes`).

Upstream (Nix 2.8): src/libstore/derivations.cc (``parseDerivation``,
``Derivation::unparse``, ``hashDerivationModulo``), primops.cc
(``derivationStrict``).

Spec: protocol.md §2.3 (store paths).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import TypeVar

from vega.core.hashes import NixHash, parse_hash_algorithm, parse_nix_hash
from vega.core.storepath import (
    STORE_DIR,
    StorePath,
    make_fixed_output_path,
    make_output_path,
    make_text_path,
    parse_store_path,
)
from vega.errors import FormatError

__all__ = [
    "MAX_DERIVATION_BYTES",
    "Derivation",
    "DerivationOutput",
    "derivation_bytes",
    "derivation_path",
    "format_derivation",
    "hash_derivation_modulo",
    "output_paths",
    "parse_derivation",
]

MAX_DERIVATION_BYTES = 64 * 1024 * 1024
"""The largest ``.drv`` :func:`parse_derivation` reads by default."""

_T = TypeVar("_T")
_STRING = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"', re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_UNESCAPES = {"n": "\n", "r": "\r", "t": "\t"}


@dataclass(frozen=True, slots=True)
class DerivationOutput:
    """One output as the ``.drv`` file states it."""

    path: StorePath | None
    """The output path; None where the file has ``""`` (floating or deferred outputs)."""
    hash_algo: str = ""
    """``""`` for input-addressed outputs, else ``[r:]<algo>`` (e.g. ``r:sha256``)."""
    hash: str = ""
    """The expected digest of a fixed output, as written (Nix writes base-16); else ``""``."""

    def __post_init__(self) -> None:
        if self.hash_algo:
            algorithm = parse_hash_algorithm(self.hash_algo.removeprefix("r:"))
            if self.hash:
                parse_nix_hash(self.hash, algorithm)
                if self.path is None:
                    raise FormatError("derivation: a fixed output has no path")
            elif self.path is not None:
                raise FormatError("derivation: a floating content-addressed output has a path")
        elif self.hash:
            raise FormatError(f"derivation: output hash {self.hash[:80]!r} without an algorithm")

    @property
    def recursive(self) -> bool:
        """Whether the hash is over the NAR serialisation (``r:``), not a flat file."""
        return self.hash_algo.startswith("r:")

    @property
    def fixed_hash(self) -> NixHash | None:
        """The expected hash of a fixed output, or None."""
        if not self.hash:
            return None
        algorithm = parse_hash_algorithm(self.hash_algo.removeprefix("r:"))
        return parse_nix_hash(self.hash, algorithm)


@dataclass(frozen=True, slots=True)
class Derivation:
    """A parsed ``.drv`` file. Paths are absolute in the file and :class:`StorePath` here."""

    outputs: tuple[tuple[str, DerivationOutput], ...]
    """Output name and output, sorted by name in files Nix writes."""
    input_drvs: tuple[tuple[StorePath, tuple[str, ...]], ...]
    """Each input derivation's path and the names of the outputs used."""
    input_srcs: tuple[StorePath, ...]
    """Input sources (store paths that are not derivation outputs)."""
    platform: str
    """The system, e.g. ``x86_64-linux``."""
    builder: str
    """The program that builds it."""
    args: tuple[str, ...]
    """The builder's arguments."""
    env: tuple[tuple[str, str], ...]
    """The environment, as name and value pairs."""

    def __post_init__(self) -> None:
        _unique("output", (name for name, _ in self.outputs))
        _unique("input derivation", (str(path) for path, _ in self.input_drvs))
        _unique("input source", (str(path) for path in self.input_srcs))
        _unique("environment variable", (name for name, _ in self.env))
        for path, names in self.input_drvs:
            _unique(f"output of input {path}", names)
            for name in names:
                _check_bare(name, "input derivation output name")
        for name, _ in self.outputs:
            _check_bare(name, "output name")
        _check_bare(self.platform, "platform")

    def output(self, name: str) -> DerivationOutput:
        """The output called ``name``.

        Args:
            name: The output name.

        Returns:
            The output.

        Raises:
            KeyError: There is no such output.
        """
        for key, out in self.outputs:
            if key == name:
                return out
        raise KeyError(name)

    def env_value(self, name: str) -> str | None:
        """The value of environment variable ``name``, or None.

        Args:
            name: The variable.

        Returns:
            Its value, or None when unset.
        """
        for key, value in self.env:
            if key == name:
                return value
        return None

    @property
    def is_fixed_output(self) -> bool:
        """Whether this is a fixed-output derivation (one output ``out`` with a known hash).

        Raises:
            FormatError: Some outputs are fixed and some are not, or a fixed
                output is not alone or not called ``out`` (Nix refuses these).
        """
        return _fixed_output(self) is not None


def _fixed_output(drv: Derivation) -> tuple[NixHash, bool, StorePath] | None:
    """The hash, recursiveness and path of a fixed-output derivation's output; None for others."""
    fixed = [(name, out) for name, out in drv.outputs if out.hash]
    if not fixed:
        return None
    if len(drv.outputs) != 1 or fixed[0][0] != "out":
        raise FormatError("derivation: only a single fixed output called 'out' is allowed")
    out = fixed[0][1]
    algorithm = parse_hash_algorithm(out.hash_algo.removeprefix("r:"))
    path = out.path
    if path is None:  # pragma: no cover - DerivationOutput refuses a fixed output without a path
        raise FormatError("derivation: a fixed output has no path")
    return parse_nix_hash(out.hash, algorithm), out.recursive, path


def _unique(what: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise FormatError(f"derivation: duplicate {what} {name[:120]!r}")
        seen.add(name)


def _check_bare(text: str, what: str) -> None:
    """Strings Nix writes without escapes must not need them."""
    if '"' in text or "\\" in text:
        raise FormatError(f"derivation: {what} may not contain a quote or backslash: {text[:120]!r}")


# --- parse ---------------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> FormatError:
        near = self.text[self.pos : self.pos + 40]
        return FormatError(f"derivation: expected {what} at offset {self.pos}, found {near!r}")

    def expect(self, literal: str) -> None:
        if not self.text.startswith(literal, self.pos):
            raise self.fail(repr(literal))
        self.pos += len(literal)

    def string(self) -> str:
        match = _STRING.match(self.text, self.pos)
        if match is None:
            raise self.fail("a string")
        self.pos = match.end()
        raw = match.group(1)
        if "\\" not in raw:
            return raw
        return _ESCAPE.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(1)), raw)

    def path(self) -> StorePath:
        start = self.pos
        text = self.string()
        if not text.startswith(STORE_DIR + "/"):
            self.pos = start
            raise self.fail("an absolute store path")
        try:
            return parse_store_path(text)
        except FormatError as e:
            raise FormatError(f"derivation: at offset {start}: {e.message}") from None

    def list_of(self, item: Callable[[], _T]) -> list[_T]:
        self.expect("[")
        items: list[_T] = []
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return items
        while True:
            items.append(item())
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif self.text.startswith("]", self.pos):
                self.pos += 1
                return items
            else:
                raise self.fail("',' or ']'")

    def output(self) -> tuple[str, DerivationOutput]:
        self.expect("(")
        name = self.string()
        self.expect(",")
        start = self.pos
        path = None if self.text.startswith('""', self.pos) else self.path()
        if path is None:
            self.pos += 2
        self.expect(",")
        hash_algo = self.string()
        self.expect(",")
        hash_text = self.string()
        self.expect(")")
        try:
            return name, DerivationOutput(path, hash_algo, hash_text)
        except FormatError as e:
            raise FormatError(f"{e.message} (output {name[:80]!r} at offset {start})") from None

    def input_drv(self) -> tuple[StorePath, tuple[str, ...]]:
        self.expect("(")
        path = self.path()
        self.expect(",")
        names = tuple(self.list_of(self.string))
        self.expect(")")
        return path, names

    def pair(self) -> tuple[str, str]:
        self.expect("(")
        key = self.string()
        self.expect(",")
        value = self.string()
        self.expect(")")
        return key, value


def parse_derivation(text: str | bytes, max_bytes: int = MAX_DERIVATION_BYTES) -> Derivation:
    """Parse a ``.drv`` file (``Derive(...)``).

    Args:
        text: The file's contents. Bytes that are not UTF-8 become lone
            surrogates (``surrogateescape``) and are written back as they were.
        max_bytes: Refuse longer input.

    Returns:
        The derivation.

    Raises:
        FormatError: The text is not a well-formed derivation.
    """
    if len(text) > max_bytes:
        raise FormatError(f"derivation: larger than {max_bytes} bytes")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    r = _Reader(text)
    r.expect("Derive(")
    outputs = r.list_of(r.output)
    r.expect(",")
    input_drvs = r.list_of(r.input_drv)
    r.expect(",")
    input_srcs = r.list_of(r.path)
    r.expect(",")
    platform = r.string()
    r.expect(",")
    builder = r.string()
    r.expect(",")
    args = r.list_of(r.string)
    r.expect(",")
    env = r.list_of(r.pair)
    r.expect(")")
    if r.pos != len(text):
        raise r.fail("the end")
    return Derivation(
        outputs=tuple(outputs),
        input_drvs=tuple(input_drvs),
        input_srcs=tuple(input_srcs),
        platform=platform,
        builder=builder,
        args=tuple(args),
        env=tuple(env),
    )


# --- format --------------------------------------------------------------------------------------


def _quote(text: str) -> str:
    if "\\" in text or '"' in text or "\n" in text or "\r" in text or "\t" in text:
        text = (
            text.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\t", "\\t")
        )
    return f'"{text}"'


def _bare_list(items: Iterable[str]) -> str:
    return "[" + ",".join(f'"{s}"' for s in items) + "]"


def _render(drv: Derivation, *, mask_outputs: bool, inputs: Iterable[tuple[str, Iterable[str]]]) -> str:
    masked = {name for name, _ in drv.outputs} if mask_outputs else set()
    outputs = ",".join(
        f'("{name}","{"" if mask_outputs or out.path is None else out.path.absolute}",'
        f'"{out.hash_algo}","{out.hash}")'
        for name, out in sorted(drv.outputs, key=lambda item: _encode(item[0]))
    )
    input_drvs = ",".join(f'("{key}",{_bare_list(sorted(names))})' for key, names in inputs)
    env = ",".join(
        f"({_quote(key)},{_quote('' if key in masked else value)})"
        for key, value in sorted(drv.env, key=lambda item: _encode(item[0]))
    )
    return (
        f"Derive([{outputs}],[{input_drvs}],"
        f"{_bare_list(sorted(p.absolute for p in drv.input_srcs))},"
        f'"{drv.platform}",{_quote(drv.builder)},'
        f"[{','.join(_quote(a) for a in drv.args)}],[{env}])"
    )


def format_derivation(drv: Derivation) -> str:
    """Write the ``.drv`` text exactly as Nix writes it (every list but the arguments sorted).

    Sorted by bytes, as Nix's maps are: a name holding non-UTF-8 bytes sorts by those bytes.

    Args:
        drv: The derivation.

    Returns:
        The ATerm text (no trailing newline); :func:`derivation_bytes` gives the file's bytes.
    """
    inputs = sorted((path.absolute, names) for path, names in drv.input_drvs)
    return _render(drv, mask_outputs=False, inputs=inputs)


def derivation_bytes(drv: Derivation) -> bytes:
    """The ``.drv`` file's bytes: :func:`format_derivation` with non-UTF-8 bytes restored.

    Raises:
        FormatError: A string holds a surrogate that does not stand for a byte.
    """
    return _encode(format_derivation(drv))


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as e:
        raise FormatError(
            f"derivation: character {e.object[e.start]!r} at offset {e.start} is not text or a byte"
        ) from None


def derivation_path(drv: Derivation, name: str) -> StorePath:
    """The store path of the ``.drv`` file itself.

    Args:
        drv: The derivation.
        name: The derivation's name (without ``.drv``).

    Returns:
        ``/nix/store/<hash>-<name>.drv``.
    """
    references = [*drv.input_srcs, *(path for path, _ in drv.input_drvs)]
    return make_text_path(f"{name}.drv", derivation_bytes(drv), references)


# --- hashDerivationModulo and output paths -------------------------------------------------------


def hash_derivation_modulo(
    drv: Derivation,
    resolve_input: Callable[[str], Derivation],
    *,
    mask_outputs: bool = False,
    cache: MutableMapping[str, bytes] | None = None,
) -> bytes:
    """Nix's ``hashDerivationModulo``: a SHA-256 digest that ignores how inputs were fetched.

    Args:
        drv: The derivation.
        resolve_input: Returns the derivation stored at an absolute ``.drv`` path;
            called at most once per input in the closure.
        mask_outputs: Blank the output paths and the environment variables named
            after outputs (as Nix does when computing input-addressed output paths).
        cache: Modulo hashes of input derivations by absolute path; pass the same
            mapping to share work across calls.

    Returns:
        The 32-byte digest.

    Raises:
        FormatError: The closure has a cycle, an input lacks an output that is
            used, or a derivation is malformed.
    """
    memo: MutableMapping[str, bytes] = {} if cache is None else cache
    loaded: dict[str, Derivation] = {}
    in_progress: set[str] = set()
    stack: list[tuple[str, bool]] = [(p.absolute, False) for p, _ in drv.input_drvs]
    while stack:
        path, expanded = stack.pop()
        if expanded:
            memo[path] = _modulo(loaded.pop(path), memo, mask_outputs=False)
            in_progress.discard(path)
            continue
        if path in memo:
            continue
        if path in in_progress:
            raise FormatError(f"derivation: input cycle through {path[:160]}")
        in_progress.add(path)
        loaded[path] = dep = resolve_input(path)
        stack.append((path, True))
        stack.extend((p.absolute, False) for p, _ in dep.input_drvs if p.absolute not in memo)
    return _modulo(drv, memo, mask_outputs=mask_outputs)


def _modulo(drv: Derivation, memo: MutableMapping[str, bytes], *, mask_outputs: bool) -> bytes:
    fixed = _fixed_output(drv)
    if fixed is not None:
        h, recursive, path = fixed
        method = "r:" if recursive else ""
        text = f"fixed:out:{method}{h.algorithm}:{h.base16}:{path.absolute}"
        return hashlib.sha256(text.encode()).digest()
    inputs: dict[str, set[str]] = {}
    for path, names in drv.input_drvs:
        inputs.setdefault(memo[path.absolute].hex(), set()).update(names)
    return hashlib.sha256(
        _encode(_render(drv, mask_outputs=mask_outputs, inputs=sorted(inputs.items())))
    ).digest()


def output_paths(
    drv: Derivation,
    resolve_input: Callable[[str], Derivation],
    *,
    name: str | None = None,
    cache: MutableMapping[str, bytes] | None = None,
) -> dict[str, StorePath]:
    """Compute every output path as Nix does.

    Args:
        drv: The derivation.
        resolve_input: As for :func:`hash_derivation_modulo` (not called for a
            fixed-output derivation).
        name: The derivation's name; by default its ``name`` environment variable.
        cache: As for :func:`hash_derivation_modulo`.

    Returns:
        Output name to store path.

    Raises:
        FormatError: The name is unknown, an output is content-addressed
            without a fixed hash (ca-derivations) or deferred, or a
            derivation in the closure is malformed.
    """
    if name is None:
        name = drv.env_value("name")
        if name is None:
            raise FormatError("derivation: no 'name' in its environment; pass the name")
    fixed = _fixed_output(drv)
    if fixed is not None:
        h, recursive, _ = fixed
        return {"out": make_fixed_output_path(name, h, recursive)}
    for key, out in drv.outputs:
        if out.hash_algo or out.path is None:
            raise FormatError(f"derivation: output {key!r} is floating or deferred; its path is not known")
    digest = hash_derivation_modulo(drv, resolve_input, mask_outputs=True, cache=cache)
    return {key: make_output_path(digest, key, name) for key, _ in drv.outputs}
