"""The token table: one declaration of the token kinds, from which every id, name and test is derived.

A vocabulary is a list of kinds, each a run of consecutive ids: its name, the values
of its tokens (a token's name is ``Kind_value``, or just ``Kind`` for a kind of one
token) and its section (``special``, ``body``: what a piece's notes are written with,
``header``: what a piece says about itself once, at its start). The ids of a kind follow
from the sizes of the kinds before it; nothing else in melody computes with token ids:
everything asks its kind (``kind.ids``, ``kind.holds(tokens)``, ``kind.token(i)``,
``kind.value_index(tokens)``). ``Vocabulary.table()`` prints the layout with its id
ranges (``melody info MODEL --vocabulary``); ``melody.tokenizer`` declares the kinds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SECTIONS = ("special", "body", "header")


@dataclass(frozen=True)
class Kind:
    """One kind of token: ``values`` (the part of each token's name after ``Kind_``; empty for a kind of
    a single token named ``Kind``), the section it belongs to and the id of its first token."""

    name: str
    values: tuple[str, ...]
    section: str
    first: int
    about: str = ""

    def __post_init__(self):
        if self.section not in SECTIONS:
            raise ValueError(f"section must be one of {', '.join(SECTIONS)}, got {self.section!r}")

    def __len__(self) -> int:
        return max(1, len(self.values))

    @property
    def ids(self) -> range:
        return range(self.first, self.first + len(self))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"{self.name}_{value}" for value in self.values) if self.values else (self.name,)

    def __contains__(self, token) -> bool:
        return self.first <= int(token) < self.first + len(self)

    def holds(self, tokens) -> np.ndarray:
        """Bool, the shape of ``tokens``: where a token is of this kind."""
        tokens = np.asarray(tokens)
        return (tokens >= self.first) & (tokens < self.first + len(self))

    def token(self, index: int) -> int:
        """The id of this kind's ``index``-th token (0-based); IndexError past its end."""
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name} has {len(self)} tokens, asked for number {index}")
        return self.first + index

    def value_index(self, tokens):
        """Each token's place in its kind (only meaningful where ``holds``); int or int64 array."""
        if np.isscalar(tokens):
            return int(tokens) - self.first
        return np.asarray(tokens, dtype=np.int64) - self.first


class Vocabulary:
    """Kinds in id order, declared as (name, values, section[, about]) tuples."""

    def __init__(self, declared):
        kinds, first = [], 0
        for name, values, section, *about in declared:
            kinds.append(Kind(name, tuple(map(str, values)), section, first, *about))
            first += len(kinds[-1])
        self.kinds = tuple(kinds)
        self._by_name = {kind.name: kind for kind in self.kinds}
        self.names: tuple[str, ...] = tuple(name for kind in self.kinds for name in kind.names)
        self.ids = {name: index for index, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name: str) -> Kind:
        return self._by_name[name]

    def kind_of(self, token: int) -> Kind:
        """The kind a token id belongs to."""
        for kind in self.kinds:
            if token in kind:
                return kind
        raise IndexError(f"token id {token} is outside the vocabulary of {len(self)}")

    def mask(self, *kinds: str) -> np.ndarray:
        """Bool (vocabulary,): True on every token of the named kinds."""
        result = np.zeros(len(self), dtype=bool)
        for name in kinds:
            result[self[name].first:self[name].first + len(self[name])] = True
        return result

    def rows_in(self, names) -> np.ndarray:
        """int64 (vocabulary,): where each of our tokens sits in another vocabulary's list of ``names``: at its
        namesake, else at the plain token of its kind (an older vocabulary's ``Bar`` for every ``Bar_n_d``),
        else -1."""
        index = {name: position for position, name in enumerate(names)}
        return np.array([index.get(name, index.get(kind.name, -1)) for kind in self.kinds for name in kind.names],
                        dtype=np.int64)

    def rows(self) -> list[dict]:
        """The layout as data, a dict per kind: kind, first and last id, first and last name, count, section,
        meaning (what ``melody info MODEL --vocabulary --json`` prints)."""
        return [{"kind": kind.name, "first": kind.first, "last": kind.ids[-1], "first_name": kind.names[0],
                 "last_name": kind.names[-1], "count": len(kind), "section": kind.section, "about": kind.about}
                for kind in self.kinds]

    def table(self) -> str:
        """The layout, a line per kind: its id range, its first and last names, how many, its section."""
        return format_table(self.rows())


def format_table(rows: list[dict]) -> str:
    """``Vocabulary.rows`` as an aligned text table."""
    lines = [f"{'ids':>9}  {'tokens':<28} {'count':>5}  section  meaning"]
    for row in rows:
        ids = f"{row['first']}" if row["count"] == 1 else f"{row['first']}-{row['last']}"
        names = row["first_name"] if row["count"] == 1 else f"{row['first_name']} .. {row['last_name']}"
        lines.append(f"{ids:>9}  {names:<28} {row['count']:>5}  {row['section']:<8} {row['about']}".rstrip())
    return "\n".join(lines)
