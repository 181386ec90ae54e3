"""How the registry names and orders the versions of a model."""

from __future__ import annotations


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key of version names: numeric parts by value, so ``2 < 10 < 10.1``.

    >>> sorted(["10", "2", "10.1", "a"], key=version_key)
    ['2', '10', '10.1', 'a']
    """
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in version.split("."))


def next_version(taken: set[str], parent: str | None) -> str:
    """The next version's name: max + 1 while every name is an integer, else ``<parent>.<n>``.

    >>> next_version(set(), None), next_version({"1", "2"}, "2"), next_version(set(), "7")
    ('1', '3', '8')
    >>> next_version({"v1", "v1.1"}, "v1")
    'v1.2'
    """
    names = taken | ({parent} if parent is not None else set())
    if all(name.isdigit() for name in names):
        return str(max((int(name) for name in names), default=0) + 1)
    base = parent if parent is not None else "v"
    n = 1
    while f"{base}.{n}" in taken:
        n += 1
    return f"{base}.{n}"
