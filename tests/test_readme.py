"""The README's configuration table agrees with the settings model and the shipped
config.toml: every key has a row, every default is the model's, written as a TOML literal of
the key's type."""

from __future__ import annotations

import re
import tomllib

from service.core import config
from tests.conftest import ROOT

README = ROOT / "README.md"
SHIPPED = ROOT / "config.toml"
HEADER = "| key | default | meaning |"
ITEM = re.compile(r"`([^`]*)`|—")  # a `TOML literal` or key, or — for a required key
SHIPPED_NOTE = re.compile(r"shipped: `([^`]*)`")


def configuration_section() -> str:
    return README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]


def items(cell: str) -> list:
    """The cell's `…` items in order (config.REQUIRED for —); nothing else may be in it."""
    assert set(ITEM.sub("", cell)) <= {",", " "}, f"not a list of `…` items: {cell!r}"
    return [config.REQUIRED if m.group(1) is None else m.group(1) for m in ITEM.finditer(cell)]


def literal(text: str):
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        raise AssertionError(f"not a TOML literal: `{text}`") from None


def table() -> list[tuple[list[str], list, str]]:
    """(keys, defaults, meaning) for each row of the configuration table."""
    lines = configuration_section().splitlines()
    start = lines.index(HEADER)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        keys, defaults, meaning = (cell.strip() for cell in line.strip().strip("|").split(" | "))
        defaults = [d if d is config.REQUIRED else literal(d) for d in items(defaults)]
        rows.append((items(keys), defaults, meaning))
    return rows


def paragraph_below_table() -> str:
    after = configuration_section().split(HEADER, 1)[1]
    return after.split("\n\n", 1)[1].split("\n\n", 1)[0]


def same(value, default) -> bool:
    return type(value) is type(default) and value == default


def test_table_has_a_row_for_every_key_but_the_secrets():
    documented = [key for keys, _, _ in table() for key in keys]
    assert len(documented) == len(set(documented)), "a key has two rows"
    secrets = {name for name, key in config.KEYS.items() if key.secret}
    assert set(documented) - set(config.KEYS) == set(), "rows for keys the model lacks"
    assert set(config.KEYS) - secrets - set(documented) == set(), "keys without a row"
    assert secrets & set(documented) == set(), "secrets belong in the paragraph below"


def test_table_defaults_are_the_model_defaults():
    for keys, defaults, _ in table():
        assert len(keys) == len(defaults), f"{keys}: one default per key, in the same order"
        for key, default in zip(keys, defaults, strict=True):
            expected = config.KEYS[key].default
            if expected is config.REQUIRED:
                assert default is config.REQUIRED, f"{key} is required: write —"
            else:
                assert default is not config.REQUIRED, f"{key} has a default: {expected!r}"
                assert isinstance(default, config.KEYS[key].kind), f"{key}: not of its type"
                assert same(default, expected), f"{key}: README {default!r}, model {expected!r}"


def test_secrets_are_named_below_the_table():
    below = paragraph_below_table()
    for name, key in config.KEYS.items():
        if key.secret:
            assert config.ENV_PREFIX + name.upper().replace(".", "__") in below, name


def test_shipped_config_differs_from_defaults_only_where_the_table_says():
    shipped = dict(config._flatten(tomllib.loads(SHIPPED.read_text())))
    notes = {}
    for keys, _, meaning in table():
        note = SHIPPED_NOTE.search(meaning)
        if note:
            assert len(keys) == 1, f"{keys}: a shipped value belongs in a row of its own"
            notes[keys[0]] = literal(note.group(1))
        elif set(keys) & config.TABLES and any(shipped.get(key) for key in keys):
            assert "shipped config.toml" in meaning, f"{keys}: say what config.toml defines"
    for name, value in shipped.items():
        default = config.KEYS[name].default
        if name in notes:
            assert same(notes[name], value), f"{name}: README says shipped {notes[name]!r}"
        elif name not in config.TABLES and default is not config.REQUIRED:
            assert same(value, default), f"{name}: config.toml has {value!r}, say so in README"
