"""Check a pipeline config before any job runs: one short message that names the key, the value and the fix.

Snakemake's own `validate` prints the whole schema and config after the one useful line (800+
lines), and JSON Schema cannot say that one key must not exceed another. The Snakefile calls
`check` first; what passes here also passes Snakemake's validation.

Before anything reads or formats it, a config's size is bounded (`bound_size`): YAML aliases
expand a few hundred bytes into millions of values, which no message may print. Numbers that
Snakemake's `--config` hands over as text (`--config 'seeds=[0,1]'` gives ['0', '1']) are
turned into numbers where the schema wants them (`coerce_numbers`). `load_config_file` reads a
config file under the same limits, with one line naming the file and line for what it cannot
read (broken YAML, a folder, a `!!python/...` tag). Every space's `references` are checked,
whichever space the profile runs (through `e2nas.spaces`, imported there only: the rest of this
module imports nothing of the library's numerics, the Snakefile loads it before any job).
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path

import yaml

from e2nas.space_schema import SPACE_SCHEMA, SPACES_DIR, space_keys, space_names  # noqa: F401 (re-exported)

# Names under results/ that are not runs: a run of that name would write into them. Beside the store
# SQLite keeps its journal, write-ahead log and shared memory (mlflow.db-journal, -wal, -shm): a folder of
# that name stops every write to the store, so every name that begins with the store's is reserved.
RESERVED_RUN_NAMES = ("mlflow.db", "mlflow.db.lock", "mlflow.db-journal", "mlflow.db-wal", "mlflow.db-shm",
                      "mlartifacts", "data-cache", "checkpoints")
RESERVED_PREFIXES = ("mlflow.db", "mlflow-server.db", "mlartifacts")  # the README's server store, backups (.broken)
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# A config's size, after its YAML aliases are expanded (a real one holds a few hundred values): past
# these it is refused before it is validated or any message formats it.
MAX_CONFIG_NODES = 100_000  # values: mappings, lists, keys and scalars
MAX_CONFIG_TEXT = 2_000_000  # characters of every string and key together
MAX_CONFIG_STRING = 20_000  # characters of one string (notes, a genotype)
MAX_CONFIG_DEPTH = 32  # nesting (a config is 3 deep; an alias that contains itself never ends)
MAX_CONFIG_FILE_BYTES = 1 << 20  # a config file read by e2nas check / the config check
MAX_LINE = 300  # characters of one problem line (a value is shown cut to fit)
# Batch sizes of the stages that step on one half of the split (the dataclasses' defaults where a profile
# sets none: e2nas.warmup.WarmupConfig, e2nas.search.SearchConfig, e2nas.sections.RetrainConfig).
DEFAULT_BATCH_SIZES = {"warmup": 64, "search": 64, "retrain": 64}
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


def reserved_run_name(name: str) -> bool:
    """Whether `name` is a file or folder the pipeline (or SQLite, or MLflow) keeps in results/, not a run."""
    return name in RESERVED_RUN_NAMES or name.startswith(RESERVED_PREFIXES)


# ---------------------------------------------------------------- size, before anything formats it


class _TooLarge(Exception):
    pass


def _measure(value, depth: int, memo: dict) -> tuple[int, int]:
    """(values, characters) of `value` with every alias expanded; shared parts are measured once (`memo`),
    so an alias bomb costs its unique size, and a count past the limits stops at once."""
    if depth > MAX_CONFIG_DEPTH:
        raise _TooLarge(f"is nested more than {MAX_CONFIG_DEPTH} levels deep (or an alias contains itself); "
                        "a pipeline config is 3 levels deep")
    if isinstance(value, (dict, list, tuple)):
        if id(value) in memo:
            nodes, chars = memo[id(value)]
        else:
            nodes, chars = 1, 0
            pairs = value.items() if isinstance(value, dict) else ((None, v) for v in value)
            for key, item in pairs:
                if key is not None:
                    k_nodes, k_chars = _measure(key, depth + 1, memo)
                    nodes, chars = nodes + k_nodes, chars + k_chars
                i_nodes, i_chars = _measure(item, depth + 1, memo)
                nodes, chars = nodes + i_nodes, chars + i_chars
                if nodes > MAX_CONFIG_NODES or chars > MAX_CONFIG_TEXT:
                    break
            memo[id(value)] = (nodes, chars)
    elif isinstance(value, (str, bytes)):
        if len(value) > MAX_CONFIG_STRING:
            raise _TooLarge(f"holds a string of {len(value):,} characters, over the limit of {MAX_CONFIG_STRING:,} "
                            "(e2nas.config_check.MAX_CONFIG_STRING)")
        nodes, chars = 1, len(value)
    else:
        nodes, chars = 1, 0
    if nodes > MAX_CONFIG_NODES or chars > MAX_CONFIG_TEXT:
        raise _TooLarge(f"holds more than {MAX_CONFIG_NODES:,} values or {MAX_CONFIG_TEXT:,} characters once its YAML "
                        f"aliases (*name) are expanded, over the limits e2nas.config_check.MAX_CONFIG_NODES and "
                        f"MAX_CONFIG_TEXT (a pipeline config holds a few hundred)")
    return nodes, chars


def size_problem(config, what: str = "the configuration") -> str | None:
    """One line when `config` is past the size limits (after alias expansion), else None; reads no more than the limits."""
    try:
        _measure(config, 0, {})
    except _TooLarge as exc:
        return f"{what} {exc}"
    return None


def bound_size(config, what: str = "the configuration") -> None:
    """Raise ConfigError naming the limit when `config` is too large to validate or print (see `size_problem`)."""
    problem = size_problem(config, what)
    if problem:
        raise ConfigError(f"invalid configuration:\n  - {problem}")


def _short(value, limit: int = 80) -> str:
    """repr of a value cut to `limit` characters without formatting all of it (the value is already bounded)."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlist, r.maxdict, r.maxlevel = limit, limit, 8, 8, 3
    text = r.repr(value)
    return text if len(text) <= limit + 10 else text[:limit] + "..."


# ---------------------------------------------------------------- reading a config file


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader: plain YAML only (no !!python tags)."""


def load_config_file(path: str | os.PathLike) -> dict:
    """A config file as Snakemake reads it (YAML or JSON, a mapping), within the size limits.

    Anything it cannot take is one ConfigError line naming the file (and the line): a folder, a missing
    or unreadable file, more than MAX_CONFIG_FILE_BYTES, broken YAML, a `!!python/...` tag, an alias
    bomb; an empty file or one that is not a mapping too.
    """
    path = Path(path)
    fail = lambda text: ConfigError(f"invalid configuration:\n  - config file {path} {text}")  # noqa: E731
    if path.is_dir():
        raise fail("is a folder, not a YAML file: name the .yaml file inside it")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_FILE_BYTES:
            raise fail(f"is {size:,} bytes, over the limit of {MAX_CONFIG_FILE_BYTES:,} (e2nas.config_check.MAX_CONFIG_FILE_BYTES); "
                       "a pipeline config is a few KB")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise fail("does not exist") from None
    except UnicodeDecodeError as exc:
        raise fail(f"is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = str(exc.problem or exc.context or "not valid YAML")
        tag = re.search(r"constructor for the tag '(?:tag:yaml.org,2002:)?([^']+)'", problem)
        if tag:
            problem = (f"the tag !!{tag[1]} is not allowed: a config holds plain YAML (mappings, lists, strings, numbers, "
                       f"booleans), nothing that builds Python objects")
        raise ConfigError(f"invalid configuration:\n  - config file {path}{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise fail(f"is not valid YAML ({_short(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 200)})") from None
    except RecursionError:
        raise fail(f"is nested too deeply (limit {MAX_CONFIG_DEPTH} levels)") from None
    problem = size_problem(doc, f"config file {path}")
    if problem:
        raise ConfigError(f"invalid configuration:\n  - {problem}")
    if not isinstance(doc, dict) or not doc:
        raise fail(f"is {'empty' if doc is None else 'not a mapping of keys'}: "
                   f"give it the keys to set (see config/config.yaml), or leave out --configfile")
    return doc


def merge(base: dict, update: dict) -> dict:
    """`update` merged into a copy of `base` key by key, nested mappings too (as Snakemake's update_config)."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# ---------------------------------------------------------------- numbers given as text (--config)

_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")
_NUMBER = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,3})?")


def _types(rule: dict) -> set[str]:
    kind = rule.get("type")
    return {kind} if isinstance(kind, str) else set(kind or ())


def _coerce(value, rule: dict):
    types = _types(rule)
    if isinstance(value, str):
        text = value.strip()
        if "integer" in types and _INTEGER.fullmatch(text):
            return int(text)
        if "number" in types and _NUMBER.fullmatch(text):
            number = float(text)
            return int(number) if number.is_integer() and _INTEGER.fullmatch(text) else number
        if "boolean" in types and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if "null" in types and text.lower() in ("null", "~"):
            return None
        return value
    if isinstance(value, dict) and isinstance(rule.get("properties"), dict):
        for key, item in value.items():
            if isinstance(rule["properties"].get(key), dict):
                value[key] = _coerce(item, rule["properties"][key])
    elif isinstance(value, list) and isinstance(rule.get("items"), dict):
        value[:] = [_coerce(item, rule["items"]) for item in value]
    return value


def coerce_numbers(config: dict, schema: dict) -> dict:
    """Numbers, booleans and nulls that arrive as text where `schema` wants them, as what they say, in place.

    Snakemake parses `--config` values with YAML's BaseLoader, which gives every scalar inside a list or
    mapping as a string: `--config 'seeds=[0,1,2]'` is seeds = ['0', '1', '2']. Only text that spells a
    value of the wanted type is converted ('1.0' stays text where an integer is wanted, and is named).
    """
    return _coerce(config, schema)


# ---------------------------------------------------------------- the checks


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


def write_composed_schema(schema_path: str | Path, out: str | Path) -> str:
    """`composed_schema` as a YAML file (Snakemake's validate reads a file), rewritten only when it changed."""
    out = Path(out)
    text = yaml.safe_dump(composed_schema(schema_path), sort_keys=False, allow_unicode=True)
    if not out.is_file() or out.read_text() != text:
        from e2nas.atomic import write_text

        write_text(out, text)
    return str(out.resolve())


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(the top level)"


class _Shown:
    """A value as a message shows it: its repr, cut short (`_short`)."""

    def __init__(self, value):
        self.value = value

    def __repr__(self) -> str:
        return _short(self.value)

    __str__ = __repr__


def _schema_message(error, config: dict) -> str:
    """One error of jsonschema as the key, the offending value and what is allowed."""
    key, kind, rule = _key(error.absolute_path), error.validator, error.validator_value
    value = _Shown(error.instance)
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(map(str, set(value.value) - set(allowed)))
        where = f"section `{key}`" if error.absolute_path else "the top level"
        close = [m for k in unknown for m in difflib.get_close_matches(str(k), allowed, n=1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        return f"unknown key {', '.join(map(repr, unknown))} in {where}{hint}; allowed: {', '.join(allowed)}"
    if kind == "required":
        missing = [k for k in rule if k not in value.value]
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
    return f"{key} = {value!r}: {_short(error.message, 200)}"


def _config_files(configfiles) -> list[str]:
    """Problems of the files given with --configfile, each read as `load_config_file` reads it (Snakemake's
    messages name no file): empty or not a mapping, too large, not plain YAML."""
    problems = []
    for path in configfiles or ():
        try:
            load_config_file(path)
        except ConfigError as exc:
            problems.append(str(exc).split("\n  - ", 1)[-1])
    return problems


def _subset_problems(config: dict) -> list[str]:
    """data.subset_per_half smaller than a batch of a stage that steps on a half: no step would run."""
    n = (config.get("data") or {}).get("subset_per_half")
    if n is None:
        return []
    found = []
    for section, images, what in (("warmup", n, "the weights half"), ("search", n, "each half")):
        batch = (config.get(section) or {}).get("batch_size") or DEFAULT_BATCH_SIZES[section]
        if images < batch:
            found.append(f"data.subset_per_half = {n} is smaller than {section}.batch_size = {batch}: a {section} step takes "
                         f"one batch of {what}, so no step would run; raise data.subset_per_half to at least {batch} "
                         f"or lower {section}.batch_size")
    retrain = config.get("retrain") or {}
    if not retrain.get("protocol"):  # the ground-truth protocol brings its own split and batch
        images = 2 * n if retrain.get("train_subset") is None else min(2 * n, retrain["train_subset"])
        batch = retrain.get("batch_size") or DEFAULT_BATCH_SIZES["retrain"]
        if images < batch:
            found.append(f"retrain trains on {images} images (both halves of data.subset_per_half = {n}"
                         f"{', retrain.train_subset' if retrain.get('train_subset') is not None else ''}), fewer than "
                         f"retrain.batch_size = {batch}: no step would run; raise them or lower retrain.batch_size")
    return found


def reference_problems(config: dict) -> list[str]:
    """Every space's `references` resolved (registry names or cell texts), whichever space the profile runs:
    a cell of another space's list is checked now, not when a profile of that space runs."""
    from e2nas import spaces

    found = []
    for name, entries in (config.get("references") or {}).items():
        if name not in spaces.NAMES:
            continue  # the schema names it
        space = spaces.get(name)
        for i, entry in enumerate(entries or ()):
            try:
                space.resolve_reference(entry)
            except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
                found.append(f"references.{name}[{i}]: {_short(str(exc), 240)}")
    return found


def problems(config: dict, schema_path: str | Path, configfiles=(), references: bool = True) -> list[str]:
    """Every problem found, each one line (the first few schema errors, then the cross-field checks).

    A config past the size limits gets that one line only: nothing else reads it. Numbers given as
    text are read as `coerce_numbers` reads them (on a copy: `check` converts the config itself).
    references: also resolve every space's `references` (imports e2nas.spaces).
    """
    import jsonschema

    found = _config_files(configfiles)
    size = size_problem(config)
    if size:
        return [*found, size]
    schema = composed_schema(schema_path)
    config = coerce_numbers(copy.deepcopy(config), schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    found += [_schema_message(e, config) for e in errors[:5]]
    if errors:
        return found  # the checks below read keys the schema vouches for
    run = config["run"]
    if not RUN_NAME.fullmatch(run):  # the schema's `$` also accepts a trailing newline
        found.append(f"run = {run!r}: a run name is letters, digits, '_', '.', '-' (no spaces or newlines), first a letter or digit")
    elif reserved_run_name(run):
        found.append(f"run = {run!r} is the name of a file the pipeline keeps in results/ (the MLflow store, its SQLite "
                     f"journal, the artifacts, the data cache); choose another run name")
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
    found += _subset_problems(config)
    if references:
        found += reference_problems(config)
    return found


def _line(problem: str) -> str:
    return problem if len(problem) <= MAX_LINE else problem[: MAX_LINE - 3] + "..."


def check(config: dict, schema_path: str | Path, configfiles=(), references: bool = True) -> None:
    """Raise ConfigError listing every problem (a few lines), or return when the config can run.

    First the size bound (before anything formats the config), then, in place, the numbers Snakemake's
    `--config` hands over as text (`coerce_numbers`), then `problems`.
    """
    found = problems(config, schema_path, configfiles, references)
    if not found:
        coerce_numbers(config, composed_schema(schema_path))
        return
    raise ConfigError("invalid configuration:\n" + "\n".join(f"  - {_line(p)}" for p in found[:12])
                      + "\n(see config/config.yaml and workflow/schemas/config.schema.yaml for every key)")
