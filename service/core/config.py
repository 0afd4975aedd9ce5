"""One config pipeline: code defaults, then the TOML file, then LEADBRIDGE_* variables,
then a mapping (tests), layered key by key into the typed Settings model
(settings.py). An unknown, mistyped or missing key fails at start with a message
naming it."""

from __future__ import annotations

import json
import os
import secrets
import stat
import tomllib
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from service.core.settings import KEYS, REQUIRED, SECRETS, SECTIONS, TABLES, Settings
from service.core.settings_checks import ConfigError

ENV_PREFIX = Settings.model_config["env_prefix"]
NESTED = Settings.model_config["env_nested_delimiter"]
__all__ = ["ConfigError", "KEYS", "REQUIRED", "SECRETS", "SECTIONS", "Settings", "TABLES", "load"]


def load(path: str | os.PathLike | None = None, overrides: dict | None = None,
         environ: dict | None = None) -> Settings:
    """Return the settings, each layer replacing the keys it names (a table whole)."""
    environ = os.environ if environ is None else environ
    explicit = path or environ.get(ENV_PREFIX + "CONFIG")
    file = Path(explicit or "config.toml")
    if not file.exists() and explicit:
        raise ConfigError(f"config file not found: {file}")
    from_file = _from_file(file) if file.exists() else {}
    from_env, given = _from_env(environ), _known(overrides or {})
    origins = {**dict.fromkeys(from_file, str(file)), **{n: env_name(n) for n in from_env},
               **dict.fromkeys(given, "overrides")}
    values = {**from_file, **from_env, **given}
    if file.exists() and "data_dir" not in from_env and "data_dir" not in given:
        # the file's ./var is the one beside it, wherever the command runs
        values["data_dir"] = os.path.normpath(
            file.resolve().parent / values.get("data_dir", KEYS["data_dir"].default))
    try:
        return Settings(**_nested(values))
    except ValidationError as exc:
        raise _explain(exc, values, origins, file) from None


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper().replace(".", NESTED)


def _from_file(file: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    found = {}
    for name, value in _flatten(data):
        if name not in KEYS:
            raise ConfigError(f"unknown config key {name} in {file}")
        if name in SECRETS and value:
            raise ConfigError(f"{name} is a secret: set {env_name(name)} in the environment, "
                              f"not in {file}")
        found[name] = value
    return found


def _flatten(data: dict, prefix: str = ""):
    for name, value in data.items():
        dotted = prefix + name
        if isinstance(value, dict) and dotted not in TABLES:
            yield from _flatten(value, dotted + ".")
        else:
            yield dotted, value


def _from_env(environ) -> dict[str, Any]:
    found = {}
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or var == ENV_PREFIX + "CONFIG":
            continue
        name = var[len(ENV_PREFIX):].lower().replace(NESTED, ".")
        if name not in KEYS:
            raise ConfigError(f"unknown config key {name} (from {var})")
        found[name] = _parse_env(KEYS[name].kind, raw, var)
    return found


def _parse_env(kind: type, raw: str, var: str) -> Any:
    if kind is str:
        return raw
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{var} must be true or false, got {raw!r}")
    if kind in (list, dict) and raw.strip()[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{var} is not valid JSON: {exc}") from exc
    if kind is list:
        return [part.strip() for part in raw.split(",") if part.strip()]
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{var} must be {kind.__name__}, got {raw!r}") from None


def _known(overrides: dict) -> dict[str, Any]:
    for name in overrides:
        if name not in KEYS:
            raise ConfigError(f"unknown config key {name} (from overrides)")
    return dict(overrides)


def _nested(values: dict[str, Any]) -> dict[str, Any]:
    """{"sla.decision_hours": 8.0} → {"sla": {"decision_hours": 8.0}}, as the model takes it."""
    nested: dict[str, Any] = {}
    for name, value in values.items():
        section, _, key = name.rpartition(".")
        (nested.setdefault(section, {}) if section else nested)[key] = value
    return nested


def _explain(exc: ValidationError, values: dict, origins: dict, file: Path) -> ConfigError:
    """The first problem pydantic found, in the words of the key it concerns; a missing key
    is told last, as the others are what the user just wrote."""
    errors = sorted(exc.errors(), key=lambda error: error["type"] == "missing")
    loc = ".".join(str(part) for part in errors[0]["loc"])
    name = next((k for k in KEYS if loc == k or loc.startswith(k + ".")), None)
    if errors[0]["type"] == "missing":
        name = name or next(k for k, key in KEYS.items()
                            if k.startswith(loc + ".") and key.default is REQUIRED)
        if not file.exists():
            return ConfigError(f"no config file at {file.resolve()} (run in the folder with "
                               "config.toml, or pass --config FILE / set LEADBRIDGE_CONFIG)")
        return ConfigError(f"missing config key {name} (set it in {file})")
    if name is None:
        return ConfigError(f"config: {errors[0]['msg']} at {loc}")
    key, value = KEYS[name], values.get(name)
    if key.choices:
        return ConfigError(f"config key {name} must be one of {', '.join(key.choices)}, "
                           f"got {value!r}")
    return ConfigError(f"config key {name} must be {key.kind.__name__}, got {value!r} "
                       f"(from {origins.get(name, 'defaults')})")


def data_dir(settings: Settings) -> Path:
    """The data folder: private to the user running Leadbridge (it holds the database, the
    secret key and captured mail with live decision links)."""
    path = Path(settings.data_dir)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _make_private(path.resolve())
    return path


# What Leadbridge keeps in its data folder; only these are tightened, so a data_dir that
# points at a shared folder never has anything else of its owner's changed.
OWN = ("leadbridge.db", "leadbridge.db-wal", "leadbridge.db-shm", "secret_key",
       "first-admin.txt", "valkey_password", "mail", "valkey")


@cache
def _make_private(folder: Path) -> None:
    """Once per process: take group and others' access away from the folder and what
    Leadbridge keeps in it (folders 0700, files 0600 as written since; older versions wrote
    0755 and 0644)."""
    _owner_only(str(folder))
    for name in OWN:
        top = folder / name
        _owner_only(str(top))
        if top.is_dir() and not top.is_symlink():
            for parent, folders, files in os.walk(top):
                for entry in (*folders, *files):
                    _owner_only(os.path.join(parent, entry))


def _owner_only(path: str) -> None:
    with suppress(FileNotFoundError):  # gone meanwhile (SQLite removes its -wal and -shm)
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            os.chmod(path, stat.S_IMODE(mode) & 0o700)


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (0600 whatever the umask, made so at creation)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, 0o600)
        out.write(data)


MIN_SECRET_BYTES = 32


def secret_key(settings: Settings) -> str:
    """The configured secret, else one generated once and kept in the data folder; one
    shorter than MIN_SECRET_BYTES is refused (it signs sessions and email links)."""
    if configured := settings.web.secret_key.get_secret_value():
        return _long_enough(configured, env_name("web.secret_key"))
    file = data_dir(settings) / "secret_key"
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _long_enough(file.read_text().strip(), str(file))
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(48))  # 64 bytes
    return file.read_text().strip()


def _long_enough(secret: str, origin: str) -> str:
    size = len(secret.strip().encode())  # spaces around a key are no secret
    if size < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the secret key from {origin} has {size} bytes; it needs at least "
            f"{MIN_SECRET_BYTES} (make one with: python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))')")
    return secret


def base_url(settings: Settings) -> str:
    web = settings.web
    return web.base_url.rstrip("/") if web.base_url else f"http://{web.host}:{web.port}"
