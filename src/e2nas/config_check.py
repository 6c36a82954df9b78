"""Check a pipeline config before any job runs: one short message that names the key, the value and the fix.

Snakemake's own `validate` prints the whole schema and config after the one useful line (800+
lines), and JSON Schema cannot say that one key must not exceed another. The Snakefile calls
`check` first; what passes here also passes Snakemake's validation.

This module imports nothing of the library's numerics (the Snakefile loads it before any job).
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path

import yaml

SPACES_DIR = Path(__file__).resolve().parent / "spaces"
SPACE_SCHEMA = "config.schema.yaml"  # a space package's keys in the shared sections

# Names under results/ that are not runs: a run of that name would write into them.
RESERVED_RUN_NAMES = ("mlflow.db", "mlflow.db.lock", "mlartifacts", "data-cache", "checkpoints")
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit seed
# (section, smaller key, larger key): ranges the schema cannot express.
ORDERED_PAIRS = (
    ("warmup", "lr_min", "lr"),
    ("search", "w_lr_min", "w_lr"),
    ("search", "tau_min", "tau_max"),
    ("search", "gdas_tau_min", "gdas_tau_max"),
    ("search", "sigma_min", "sigma_max"),
    ("retrain", "lr_min", "lr"),
)


class ConfigError(ValueError):
    """A config that cannot run; the message is meant to be read as it is, without a traceback."""


def space_names(spaces_dir: Path = SPACES_DIR) -> list[str]:
    """The space packages (folders of e2nas.spaces with an __init__.py), as e2nas.spaces.NAMES finds them."""
    return sorted(p.parent.name for p in spaces_dir.glob("*/__init__.py"))


def composed_schema(schema_path: str | Path, spaces_dir: Path = SPACES_DIR) -> dict:
    """The config schema: workflow/schemas/config.schema.yaml, `space` an enum of the space packages, and
    each space's keys (its package's config.schema.yaml) added to the sections they extend. Every space's
    keys are allowed whatever the profile's space: a profile is merged over config/config.yaml, whose
    sections may hold another space's keys."""
    schema = copy.deepcopy(yaml.safe_load(Path(schema_path).read_text()))
    names = space_names(spaces_dir)
    schema["properties"]["space"]["enum"] = names
    for name in names:
        fragment = spaces_dir / name / SPACE_SCHEMA
        for section, keys in (yaml.safe_load(fragment.read_text()) if fragment.is_file() else {}).items():
            props = schema["properties"][section].setdefault("properties", {})
            for key, rule in keys.items():
                if key in props and props[key] != rule:
                    raise ConfigError(f"{fragment}: key {section}.{key} is described differently by another space or "
                                      f"the shared schema; give it another name or the same description")
                props[key] = rule
    return schema


def _refused_keys(config: dict, spaces_dir: Path = SPACES_DIR) -> list[str]:
    """Keys a space marks `x-refused-by-other-spaces` set (not null) in a profile of another space:
    dropping them silently would run something else than asked (NB201's supernet.split_edge on DARTS)."""
    found = []
    for name in space_names(spaces_dir):
        fragment = spaces_dir / name / SPACE_SCHEMA
        if name == config.get("space") or not fragment.is_file():
            continue
        for section, keys in (yaml.safe_load(fragment.read_text()) or {}).items():
            for key, rule in keys.items():
                if rule.get("x-refused-by-other-spaces") and (config.get(section) or {}).get(key) is not None:
                    found.append(f"{section}.{key} is a key of the {name} space only; the {config.get('space')} space "
                                 f"has nothing like it: remove it (or set it to null)")
    return found


def space_keys(section: str, spaces_dir: Path = SPACES_DIR) -> set[str]:
    """The keys the space packages add to config section `section` (every space's)."""
    keys = set()
    for name in space_names(spaces_dir):
        fragment = spaces_dir / name / SPACE_SCHEMA
        keys |= set((yaml.safe_load(fragment.read_text()) if fragment.is_file() else {}).get(section) or {})
    return keys


def write_composed_schema(schema_path: str | Path, out: str | Path) -> str:
    """`composed_schema` as a YAML file (Snakemake's validate reads a file), rewritten only when it changed."""
    out = Path(out)
    text = yaml.safe_dump(composed_schema(schema_path), sort_keys=False, allow_unicode=True)
    if not out.is_file() or out.read_text() != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(f".{out.name}.{os.getpid()}")
        part.write_text(text)
        part.replace(out)
    return str(out.resolve())


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(the top level)"


def _schema_message(error, config: dict) -> str:
    """One error of jsonschema as the key, the offending value and what is allowed."""
    key, value, kind, rule = _key(error.absolute_path), error.instance, error.validator, error.validator_value
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(value) - set(allowed))
        where = f"section `{key}`" if error.absolute_path else "the top level"
        close = [m for k in unknown for m in difflib.get_close_matches(str(k), allowed, n=1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        return f"unknown key {', '.join(map(repr, unknown))} in {where}{hint}; allowed: {', '.join(allowed)}"
    if kind == "required":
        missing = [k for k in rule if k not in value]
        return f"missing key {', '.join(map(repr, missing))} at {key}"
    if kind == "enum":
        return f"{key} = {value!r} is not allowed; choose one of: {', '.join(map(str, rule))}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[kind]
        return f"{key} = {value!r} is out of range: it must be {bound} {rule}"
    if kind == "type":
        return f"{key} = {value!r} has the wrong type: expected {rule if isinstance(rule, str) else ' or '.join(rule)}"
    if kind == "pattern":
        return f"{key} = {value!r} does not match the allowed form {rule}"
    return f"{key} = {value!r}: {error.message}"


def _config_files(configfiles) -> list[str]:
    """Problems of the files given with --configfile: empty or not a mapping (Snakemake's message names no file)."""
    problems = []
    for path in configfiles or ():
        path = Path(path)
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"config file {path} cannot be read as YAML ({exc.__class__.__name__}: {str(exc).splitlines()[0]})")
            continue
        if not isinstance(doc, dict) or not doc:
            problems.append(f"config file {path} is {'empty' if doc is None else 'not a mapping of keys'}: "
                            f"give it the keys to set (see config/config.yaml), or leave out --configfile")
    return problems


def problems(config: dict, schema_path: str | Path, configfiles=()) -> list[str]:
    """Every problem found, each one line (the first few schema errors, then the cross-field checks)."""
    import jsonschema

    found = _config_files(configfiles)
    schema = composed_schema(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    found += [_schema_message(e, config) for e in errors[:5]]
    if errors:
        return found  # the checks below read keys the schema vouches for
    run = config["run"]
    if not RUN_NAME.fullmatch(run):  # the schema's `$` also accepts a trailing newline
        found.append(f"run = {run!r}: a run name is letters, digits, '_', '.', '-' (no spaces or newlines), first a letter or digit")
    elif run in RESERVED_RUN_NAMES:
        found.append(f"run = {run!r} is the name of a file the pipeline keeps in results/; choose another run name")
    for seed in config["seeds"]:
        if not isinstance(seed, int) or isinstance(seed, bool):
            found.append(f"seeds: {seed!r} is not an integer (write {int(seed)} without a decimal point)"
                         if isinstance(seed, float) and seed.is_integer() else f"seeds: {seed!r} is not an integer")
        elif seed > MAX_SEED:
            found.append(f"seeds: {seed} is too large: seeds must be <= 2**63 - 1")
    found += _refused_keys(config)
    for section, low, high in ORDERED_PAIRS:
        values = config.get(section) or {}
        if values.get(low) is not None and values.get(high) is not None and values[low] > values[high]:
            found.append(f"{section}.{low} = {values[low]} is larger than {section}.{high} = {values[high]}; "
                         f"need {low} <= {high}")
    return found


def check(config: dict, schema_path: str | Path, configfiles=()) -> None:
    """Raise ConfigError listing every problem (a few lines), or return when the config can run."""
    found = problems(config, schema_path, configfiles)
    if found:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  - {p}" for p in found)
                          + "\n(see config/config.yaml and workflow/schemas/config.schema.yaml for every key)")
