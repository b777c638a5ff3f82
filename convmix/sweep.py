"""Hyperparameter sweeps: grids of configurations -> one DataFrame row each; result files (CSV).

Counts are exact and need no forward pass: parameters are read from modules built on the meta
device (shapes without storage, so a 2048-channel module costs nothing) and checked against
`counting.param_formula`; multiply-adds and FLOPs come from `counting.step_costs`, the formulas
the tests check against executed operations. Latency and memory are measured only when asked
(convmix.bench) and merged into the same rows.

Frames for the charts: `add_labels` names each row (the configuration id, what varies, the line
and the facet it belongs to), `relative_to` expresses values against a baseline configuration, and
`flag_noise` marks latencies whose spread is too large to trust.

A result file is a CSV with one row per configuration; `read_results` validates an untrusted file
(size, row count, columns, types, ranges, and that its parameter counts agree with the formula)
and raises `ResultFileError` with one sentence per problem. Column names are English in every
language: the file format is shared with the command line. Built-in reference data sets (result
files measured elsewhere, e.g. by benchmarks/gpu_reference.py on a GPU) live in REFERENCE_DIR.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from .config import DTYPE_BYTES, LIMITS, ACmixConfig
from .constraints import VARIANTS, Problem
from .counting import SUBMODULES, Cost, module_param_counts, param_formula, stage_costs, total_cost
from .format import literal
from .i18n import N_, _, ngettext
from .load import CpuSnapshot
from .presets import DEFAULT_PRESET, PRESETS, RESNET_LAYERS, layer_of


# -- axes and grids ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """A hyperparameter the explorer can sweep: which config fields it sets, and its offered values.

    Most axes set their fields to the value itself (channels sets in_planes and out_planes to it);
    the ResNet layer axis sets five fields from a named shape (`settings`).
    """

    name: str
    label: str  # N_(): translated where shown
    fields: tuple[str, ...]
    choices: tuple
    default: tuple
    column: str = ""  # the result column that holds the value, when the axis sets several fields
    settings: Mapping | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.column:
            object.__setattr__(self, "column", self.fields[0])

    def assignment(self, value) -> dict[str, int]:
        if self.settings is not None:
            if value not in self.settings:
                raise SweepError(_("Unknown value {value} for {axis}: use one of {choices}.",
                                   value=literal(value, 30), axis=self.name, choices=", ".join(self.choices)))
            return dict(self.settings[value])
        return dict.fromkeys(self.fields, int(value))


LAYER_FIELDS = ("in_planes", "out_planes", "height", "width", "stride")
AXES: dict[str, Axis] = {
    a.name: a
    for a in (
        Axis("layer", N_("ACmix ResNet layer"), LAYER_FIELDS, tuple(RESNET_LAYERS), tuple(RESNET_LAYERS),
             column="layer", settings={k: s.fields() for k, s in RESNET_LAYERS.items()}),
        Axis("kernel_att", N_("attention window kernel_att"), ("kernel_att",), (1, 3, 5, 7, 9, 11, 13, 15),
             (3, 5, 7, 9)),
        Axis("head", N_("heads"), ("head",), (1, 2, 4, 8, 16, 32, 64), (1, 2, 4, 8)),
        Axis("stride", N_("stride"), ("stride",), (1, 2, 4), (1, 2)),
        Axis("kernel_conv", N_("conv kernel kernel_conv"), ("kernel_conv",), (1, 3, 5, 7), (3, 5)),
        Axis("channels", N_("channels (in_planes = out_planes)"), ("in_planes", "out_planes"),
             (8, 16, 32, 64, 128, 256, 512, 1024, 2048), (32, 64, 128, 256, 512), column="out_planes"),
        Axis("resolution", N_("resolution (height = width)"), ("height", "width"),
             (7, 8, 14, 16, 28, 32, 56, 64, 112, 224), (28, 56), column="height"),
        Axis("batch", N_("batch"), ("batch",), (1, 2, 4, 8, 16, 32, 64), (1, 4)),
    )
}
# The page's default sweep (also what benchmarks/explorer_default_sweep.py times): a preset.
DEFAULT_VARIED = tuple(name for name, _values in PRESETS[DEFAULT_PRESET].axes)
MAX_CONFIGS = 1000

CONFIG_COLUMNS = (
    "in_planes", "out_planes", "kernel_att", "head", "kernel_conv", "stride", "dilation",
    "height", "width", "batch", "variant",
)
STAGE_COLUMNS = {"Stage I": "stage1", "attention": "attention_path", "convolution": "conv_path", "mix": "mix"}
# Each traced step's cost belongs to the submodule that computes it; the attention path's
# weight-free arithmetic (scaling, logits, softmax, weighted sum) is one component of its own.
COMPONENT_OF_STEP = {
    "q": "conv1", "k": "conv2", "v": "conv3", "pe": "conv_p",
    "q_att": "attention ops", "logits": "attention ops", "att": "attention ops", "out_att": "attention ops",
    "f_all": "fc", "out_conv": "dep_conv", "out": "mix",
}
COMPONENTS = ("conv1", "conv2", "conv3", "conv_p", "attention ops", "fc", "dep_conv", "mix")


def component_column(kind: str, component: str) -> str:
    return f"{kind}_{component.replace(' ', '_')}"


class SweepError(ValueError):
    """A sweep that cannot be run as asked (too many configurations, nothing valid)."""


@dataclass
class Grid:
    configs: list[ACmixConfig] = field(default_factory=list)
    skipped: list[tuple[ACmixConfig, list[Problem]]] = field(default_factory=list)

    def skip_notes(self, limit: int = 6) -> list[str]:
        """One sentence per violated constraint: how many configurations it ruled out, and why."""
        by_constraint: dict[str, tuple[int, ACmixConfig, Problem]] = {}
        for config, problems in self.skipped:
            for p in problems:
                count, first, problem = by_constraint.get(p.constraint, (0, config, p))
                by_constraint[p.constraint] = (count + 1, first, problem)
        notes = []
        for count, config, problem in sorted(by_constraint.values(), key=lambda t: -t[0])[:limit]:
            notes.append(ngettext("{count:,} configuration skipped, e.g. {example}: {reason}",
                                  "{count:,} configurations skipped, e.g. {example}: {reason}", count,
                                  count=count, example=short_id(config), reason=problem.sentence()))
        return notes


def fields_of_axis(name: str) -> tuple[str, ...]:
    return AXES[name].fields if name in AXES else (name,)


def axis_assignments(name: str, values: Iterable) -> list[dict[str, int]]:
    """The field settings of one axis: an AXES name (channels sets in_planes and out_planes) or a field."""
    if name not in AXES and name not in ACmixConfig.__dataclass_fields__:
        raise SweepError(_("Unknown sweep axis {name}: use one of {axes} or a config field.",
                           name=repr(name), axes=", ".join(AXES)))
    if name in AXES:
        return [AXES[name].assignment(v) for v in dict.fromkeys(values)]
    return [{name: int(v)} for v in dict.fromkeys(values)]


def check_axes(axes: Iterable[str]) -> None:
    """Raise SweepError when two axes set the same field (the ResNet layer sets channels, size and
    stride, so it cannot vary beside them)."""
    owner: dict[str, str] = {}
    for name in axes:
        for f in fields_of_axis(name):
            if f in owner and owner[f] != name:
                first, second = owner[f], name
                raise SweepError(_(
                    "{first} and {second} both set {field}: vary only one of them.",
                    first=_(AXES[first].label) if first in AXES else first,
                    second=_(AXES[second].label) if second in AXES else second, field=f))
            owner[f] = name


def expand_grid(base: ACmixConfig, axes: Mapping[str, Sequence], limit: int = MAX_CONFIGS) -> Grid:
    """Every combination of the axes' values on top of `base`; invalid ones are skipped with reasons."""
    check_axes(axes)
    lists = [axis_assignments(name, values) for name, values in axes.items()]
    lists = [lst for lst in lists if lst]
    size = math.prod(len(lst) for lst in lists)
    if size > limit:
        raise SweepError(_(
            "This sweep has {size:,} configurations; at most {limit:,} are counted at once. Remove some values.",
            size=size, limit=limit))
    grid = Grid()
    seen: set[ACmixConfig] = set()
    for combo in itertools.product(*lists):
        changes: dict[str, int] = {}
        for part in combo:
            changes.update(part)
        config = base.with_(**changes)
        if config in seen:
            continue
        seen.add(config)
        problems = config.problems()
        if problems:
            grid.skipped.append((config, problems))
        else:
            grid.configs.append(config)
    return grid


# -- labels ---------------------------------------------------------------------------------------------
_SHORT = {
    "in_planes": "Cin", "out_planes": "C", "kernel_att": "ka", "head": "h", "kernel_conv": "kc",
    "stride": "s", "dilation": "dil", "batch": "B",
}


def short_id(config: ACmixConfig) -> str:
    """Every hyperparameter in one line: the key that links a configuration across charts, files and
    the URL (language-neutral)."""
    return _label_parts(
        {c: getattr(config, c) for c in CONFIG_COLUMNS}, CONFIG_COLUMNS
    )


def _label_parts(values: Mapping[str, object], columns: Iterable[str]) -> str:
    cols = list(columns)
    parts = []
    for col in cols:
        if col == "width" and "height" in cols:
            continue
        if col == "layer":
            parts.append(str(values["layer"]))
        elif col == "height":
            w = values.get("width", values["height"]) if "width" in cols else values["height"]
            parts.append(f"{int(values['height'])}×{int(w)}")
        elif col == "width":
            parts.append(f"W={int(values['width'])}")
        elif col == "variant":
            parts.append(str(values["variant"]))
        else:
            parts.append(f"{_SHORT[col]}={int(values[col])}")
    return " ".join(parts)


def varying_columns(df: pd.DataFrame) -> list[str]:
    """Config columns with more than one value in `df`, in CONFIG_COLUMNS order."""
    return [c for c in CONFIG_COLUMNS if c in df.columns and df[c].nunique(dropna=False) > 1]


def _described_columns(df: pd.DataFrame) -> list[str]:
    """What varies, as labels name it: channels swept together as one C; ResNet layer shapes as the
    layer's name when every row has one."""
    varying = varying_columns(df)
    if {"in_planes", "out_planes"} <= set(varying) and (df["in_planes"] == df["out_planes"]).all():
        varying.remove("in_planes")  # channels swept together: "C=64" says it (in_planes = out_planes)
    if "layer" in df and (df["layer"] != "").all() and any(c in LAYER_FIELDS for c in varying):
        varying = ["layer"] + [c for c in varying if c not in LAYER_FIELDS]
    return varying


def add_labels(df: pd.DataFrame, x: str | None = None, facet: str | None = None) -> pd.DataFrame:
    """Add `config` (the full id), `layer` (the ResNet layer shape, or ''), `label` (what varies),
    `series` (what varies besides x and the facet), `facet` (the facet's value, '' without one) and
    `row` (what varies within the facet: a bar's label in a chart that names its facet)."""
    out = df.copy()
    if out.empty:
        return out.assign(**{c: pd.Series(dtype=str) for c in ("config", "layer", "label", "series", "facet", "row")})
    records = out.to_dict("records")
    out["layer"] = [layer_of(r) if all(k in r for k in LAYER_FIELDS) else "" for r in records]
    records = out.to_dict("records")
    varying = _described_columns(out)
    x_fields = set(_fields_of(x, out)) if x else set()
    facet_fields = set(_fields_of(facet, out)) if facet else set()
    drawn = x_fields | facet_fields | ({"layer"} if "layer" in (x, facet) else set())
    rest = [c for c in varying if c not in drawn]
    in_facet = [c for c in varying if c not in facet_fields and not (c == "layer" and facet == "layer")]
    out["config"] = [_label_parts(r, CONFIG_COLUMNS) for r in records]
    out["label"] = [_label_parts(r, varying) if varying else _("this configuration") for r in records]
    out["series"] = [_label_parts(r, rest) if rest else _("all") for r in records]
    out["facet"] = [facet_title(r, facet) for r in records] if facet else ""
    out["row"] = [_label_parts(r, in_facet) if in_facet else _("this configuration") for r in records]
    return out


def facet_title(row: Mapping[str, object], facet: str) -> str:
    """The facet a row belongs to, in the labels' notation: 'ka=3', '56×56', or the layer's label."""
    if facet == "layer":
        return RESNET_LAYERS[row["layer"]].label if row.get("layer") else _label_parts(row, LAYER_FIELDS)
    return _label_parts(row, _fields_of_facet(facet))


def _fields_of_facet(facet: str) -> tuple[str, ...]:
    if facet == "channels":
        return ("out_planes",)
    return fields_of_axis(facet)


def _fields_of(x: str, df: pd.DataFrame) -> tuple[str, ...]:
    if x in AXES:
        return AXES[x].fields
    if x == "out_planes" and "in_planes" in df and (df["in_planes"] == df["out_planes"]).all():
        return ("in_planes", "out_planes")
    if x == "height" and "width" in df and (df["height"] == df["width"]).all():
        return ("height", "width")
    return (x,)


def facet_order(df: pd.DataFrame, facet: str) -> list[str]:
    """The facets of `df` in a reading order: the network's order for layers, else by value."""
    if df.empty or not facet:
        return []
    if facet == "layer":
        order = {RESNET_LAYERS[k].label: i for i, k in enumerate(RESNET_LAYERS)}
        return sorted(dict.fromkeys(df["facet"]), key=lambda t: (order.get(t, len(order)), t))
    key_cols = list(_fields_of_facet(facet))
    firsts = df.drop_duplicates("facet").sort_values(key_cols)
    return list(firsts["facet"])


# -- relative values and noise --------------------------------------------------------------------------
def relative_to(df: pd.DataFrame, columns: Sequence[str], baseline: str, within: Sequence[str] = (),
                denominators: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Add `<column>_rel` = value / reference − 1 for each column (divided by the reference's
    `denominators[column]` instead where given: a latency's quartiles against the reference's median).

    The reference of a row is the row with the baseline configuration's settings in every varying
    hyperparameter except the `within` columns, where it keeps the row's own values: with
    within=["layer"], each layer is compared with the baseline's kernel_att and head at that layer;
    with within=[] every row is compared with the baseline itself. Rows without a reference (or
    with a reference of 0) get NaN.
    """
    out = df.copy()
    base = out[out["config"] == baseline]
    if base.empty:
        for col in columns:
            out[f"{col}_rel"] = math.nan
        return out
    within = [c for c in within if c in out]
    match = [c for c in varying_columns(out) if c not in within and not ("layer" in within and c in LAYER_FIELDS)]
    first = base.iloc[0]
    mask = pd.Series(True, index=out.index)
    for c in match:
        mask &= out[c] == first[c]
    refs = out[mask]
    denominators = {col: (denominators or {}).get(col, col) for col in columns}
    needed = list(dict.fromkeys(denominators.values()))
    if within:
        refs = refs.drop_duplicates(subset=within)[list(dict.fromkeys([*within, *needed]))]
        merged = out[list(within)].merge(refs, on=list(within), how="left", suffixes=("_row", ""))
        merged.index = out.index
        ref_values = {col: merged[col] for col in needed}
    else:
        ref_values = {col: pd.Series(first[col], index=out.index) for col in needed}
    for col in columns:
        ref = pd.to_numeric(ref_values[denominators[col]], errors="coerce").astype(float)
        value = pd.to_numeric(out[col], errors="coerce").astype(float)
        out[f"{col}_rel"] = (value / ref.where(ref != 0)) - 1
    return out


NOISY_SPREAD = 0.25  # a latency whose interquartile range exceeds this share of its median is flagged


def flag_noise(df: pd.DataFrame, prefix: str = "latency_ms") -> pd.DataFrame:
    """Add `spread` = (75th − 25th percentile) / median and `noisy` = spread > NOISY_SPREAD for the
    latency columns with this prefix (rows without a latency: NaN and False)."""
    out = df.copy()
    median = pd.to_numeric(out.get(prefix), errors="coerce") if prefix in out else pd.Series(math.nan, index=out.index)
    p25 = pd.to_numeric(out.get(f"{prefix}_p25"), errors="coerce") if f"{prefix}_p25" in out else math.nan
    p75 = pd.to_numeric(out.get(f"{prefix}_p75"), errors="coerce") if f"{prefix}_p75" in out else math.nan
    spread = (p75 - p25) / median.where(median > 0)
    out["spread"] = spread.astype(float)
    out["noisy"] = (spread > NOISY_SPREAD).fillna(False).astype(bool)
    return out


# -- counts ---------------------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def module_params(in_planes: int, out_planes: int, head: int, kernel_conv: int) -> tuple[tuple[str, int], ...]:
    """Parameters per submodule, read from an ACmix built on the meta device (no storage).

    Raises RuntimeError if the module's own count disagrees with counting.param_formula.
    """
    import torch

    from .acmix import ACmix

    # kernel_att, stride and the variant change no parameter; "fixed" accepts every odd kernel_conv.
    with torch.device("meta"):
        module = ACmix(in_planes, out_planes, 3, head, kernel_conv, variant="fixed")
    counts = module_param_counts(module)
    formula = param_formula(in_planes, out_planes, head, kernel_conv)
    if counts != formula:
        raise RuntimeError(f"parameter formula disagrees with the module: {counts} != {formula}")
    return tuple(counts.items())


def count_row(config: ACmixConfig) -> dict:
    """One row: the configuration, its exact parameters and its multiply-adds / FLOPs, broken down."""
    row: dict = {c: getattr(config, c) for c in CONFIG_COLUMNS}
    row["out_height"], row["out_width"] = config.out_height, config.out_width
    params = dict(module_params(config.in_planes, config.out_planes, config.head, config.kernel_conv))
    row["params"] = sum(params.values())
    for name in SUBMODULES:
        row[f"params_{name}"] = params[name]
    costs = config.step_costs()
    total = total_cost(costs)
    row["macs"], row["flops"] = total.macs, total.flops
    for kind in ("macs", "flops"):
        per = dict.fromkeys(COMPONENTS, 0)
        for step, cost in costs.items():
            per[COMPONENT_OF_STEP[step]] += getattr(cost, kind)
        for component, value in per.items():
            row[component_column(kind, component)] = value
        stages = stage_costs(costs)
        for stage, column in STAGE_COLUMNS.items():
            row[f"{kind}_{column}"] = getattr(stages.get(stage, Cost()), kind)
        row[f"stage1_share_{kind}"] = row[f"{kind}_stage1"] / row[kind] if row[kind] else 0.0
    # Baselines built from the same sizes (convmix.bench times them).
    c, cin, kc = config.out_planes, config.in_planes, config.kernel_conv
    row["conv2d_params"] = cin * c * kc * kc + c
    row["local_attention_params"] = params["conv1"] + params["conv2"] + params["conv3"] + params["conv_p"]
    return row


def count_rows(configs: Iterable[ACmixConfig]) -> pd.DataFrame:
    return pd.DataFrame([count_row(c) for c in configs])


def sweep_frame(configs: Sequence[ACmixConfig], measured: Mapping[ACmixConfig, dict] | None = None) -> pd.DataFrame:
    """Count rows, with the measured columns of every configuration in `measured` merged in."""
    rows = []
    for config in configs:
        row = count_row(config)
        if measured and config in measured:
            row.update(measured[config])
        rows.append(row)
    return pd.DataFrame(rows)


def idle_cpus(seconds: float = 0.5, since: CpuSnapshot | None = None,
              load_average_floor: bool = True) -> float | None:
    """How many CPUs other processes leave idle: the CPUs less what others kept busy since `since`
    (a snapshot taken earlier, e.g. when the command started; this process's own time is left out)
    over at least `seconds` (waiting for the rest), or over the next `seconds`; and less the
    1-minute load average when that is higher, so that a quiet moment on a busy machine does not
    pass for a quiet machine (`load_average_floor=False` leaves that out, for a process that has
    kept a core busy itself for the last minute: the load average counts it too). None where
    /proc/stat cannot be read."""
    import time

    from .load import cpu_snapshot, load_average, others_cpu_share

    before = since or cpu_snapshot()
    if before is None:
        return None
    time.sleep(max(0.0, seconds - (time.monotonic() - before.wall)))
    after = cpu_snapshot()
    share = others_cpu_share(before, after)
    if after is None or math.isnan(share):
        return None
    average = load_average() if load_average_floor else math.nan
    busy = max(share * after.cpus, 0.0 if math.isnan(average) else average)
    return max(0.0, after.cpus - busy)


def sweep_threads(requested: int | None = None, environ: Mapping[str, str] | None = None,
                  idle: Callable[[], float | None] | None = None) -> int:
    """Intra-op threads for a sweep's measurements: `requested`; else $CONVMIX_THREADS (read as
    convmix.runtime reads it); else one per CPU that other processes leave idle (`idle()`, by default
    `idle_cpus()`; counted whole from three quarters up), at least 1 and at most the CPUs this
    process may use.

    A measurement with more threads than free cores is slowed many times over (at each operation
    the threads wait for the one whose core is busy), so on a busy machine it measures the load more
    than the module, and slowly: on a shared two-core machine (load average about 2), ACmix's
    Stage I took 1 ms with one thread and 88 ms with two. Alone on a machine, a sweep uses every
    core (as convmix.runtime's lone measurement does). The count
    is chosen once for the whole sweep, so that its rows compare, and written in every row.
    """
    import os

    from .runtime import THREADS_ENV, thread_count, usable_cpus

    if requested is not None:
        return requested
    env = os.environ if environ is None else environ
    if env.get(THREADS_ENV, "").strip():
        return thread_count(dict(env))
    usable = usable_cpus()
    free = (idle or idle_cpus)()
    if free is None:
        return usable
    return max(1, min(usable, math.floor(free + 0.25)))


def measure_configs(
    configs: Sequence[ACmixConfig],
    measure: Callable[[ACmixConfig], dict],
    progress: Callable[[int, int, ACmixConfig, dict | None, str | None], None] | None = None,
) -> tuple[dict[ACmixConfig, dict], list[str]]:
    """Call `measure` on each configuration; failures (ValueError, out of memory) become notes."""
    results: dict[ACmixConfig, dict] = {}
    notes: list[str] = []
    for i, config in enumerate(configs, 1):
        error = None
        try:
            results[config] = measure(config)
        except (ValueError, MemoryError) as err:
            error = str(err)
        except RuntimeError as err:  # the allocator's "out of memory" is a RuntimeError
            if "out of memory" not in str(err).lower():
                raise
            error = _("out of memory: {error}", error=err)
        if error:
            notes.append(_("{config} not measured: {error}", config=short_id(config), error=error))
        if progress:
            progress(i, len(configs), config, results.get(config), error)
    return results, notes


@dataclass
class Plan:
    """What one click measures: `batch` in order, estimated at `seconds`; `too_slow` are estimated
    beyond the time limit even alone (they are left out and named)."""

    batch: list[ACmixConfig] = field(default_factory=list)
    too_slow: list[ACmixConfig] = field(default_factory=list)
    seconds: float = 0.0


def plan_batch(pending: Sequence[ACmixConfig], limit: float,
               estimate: Callable[[ACmixConfig], tuple[float, float]], examine: int = 24) -> Plan:
    """The configurations one request of at most `limit` seconds measures, in order.

    `estimate(config)` gives (the shortest measurement, the whole measurement) in seconds; a
    configuration whose shortest measurement exceeds the limit is too slow. The batch takes
    configurations while their whole estimates fit the limit (always at least one), looking at no
    more than `examine` of them (estimates may probe the machine)."""
    plan = Plan()
    for config in pending[:examine]:
        shortest, whole = estimate(config)
        if shortest > limit:
            plan.too_slow.append(config)
            continue
        if plan.batch and plan.seconds + whole > limit:
            break
        plan.batch.append(config)
        plan.seconds += whole
    return plan


def stage1_crossover(df: pd.DataFrame, kind: str = "flops", x: str = "out_planes") -> dict[str, int | None]:
    """Per series: the smallest x from which Stage I's share stays above one half (None if never)."""
    out: dict[str, int | None] = {}
    frame = df if "series" in df else add_labels(df, x)
    for series, part in frame.sort_values(x).groupby("series", sort=False):
        share = part[f"stage1_share_{kind}"].to_numpy()
        xs = part[x].to_numpy()
        above = share > 0.5
        start = None
        for i in range(len(xs)):
            if above[i:].all():
                start = int(xs[i])
                break
        out[str(series)] = start
    return out


# -- result files ------------------------------------------------------------------------------------------
REQUIRED_COLUMNS = (
    "in_planes", "out_planes", "kernel_att", "head", "kernel_conv", "stride", "height", "width",
    "batch", "variant", "params", "macs", "flops", "latency_ms", "latency_ms_p25", "latency_ms_p75",
    "peak_bytes", "device", "device_name", "dtype", "torch_version",
)
INT_COLUMNS = ("in_planes", "out_planes", "kernel_att", "head", "kernel_conv", "stride", "height",
               "width", "batch", "params", "macs", "flops")
OPTIONAL_INT_COLUMNS = ("dilation", "threads", "timed_samples", "cpus")
MEASURED_FLOAT_COLUMNS = ("latency_ms", "latency_ms_p25", "latency_ms_p75", "peak_bytes")
OPTIONAL_FLOAT_COLUMNS = (
    *(f"{n}_ms{s}" for n in ("stage1", "attention_path", "conv_path", "conv2d", "local_attention")
      for s in ("", "_p25", "_p75")),
    "estimated_peak_bytes", "compulsory_bytes", "floor_ms", "floor_ratio", "peak_flops_per_s",
    "peak_bytes_per_s", "others_cpu_share", "load_avg_1m",
)
TEXT_COLUMNS = ("variant", "device", "device_name", "dtype", "torch_version", "impl", "floor_bound")
WHOLE_NUMBER_COLUMNS = ("peak_bytes", "estimated_peak_bytes", "compulsory_bytes", "timed_samples", "threads",
                        "cpus")
MAX_ROWS = 5000
MAX_BYTES = 2_000_000
MAX_TEXT = 120
MAX_COLUMNS = 256  # a result file written by the CLI has about 80
MAX_HEADER_CHARS = 16_000
# Every whole-number column is range-checked, as the sidebar checks its widgets: configuration
# columns by convmix.config.LIMITS, counts up to 10^18 (int64 holds them exactly), the rest by what
# a measurement can produce.
COUNT_LIMIT = 10**18
INT_RANGES: dict[str, tuple[int, int]] = {
    **{c: LIMITS[c] for c in INT_COLUMNS + OPTIONAL_INT_COLUMNS if c in LIMITS},
    "params": (1, COUNT_LIMIT), "macs": (1, COUNT_LIMIT), "flops": (1, COUNT_LIMIT),
    "threads": (1, 4096), "timed_samples": (1, 10**9), "cpus": (1, 4096),
}
# Upper bounds of the measured columns: a week in milliseconds; byte counts that float64 holds
# exactly (2^53 bytes = 8 PiB); rates and ratios far beyond any machine; a share is at most 1.
FLOAT_LIMITS: dict[str, float] = {
    **{c: 6.048e8 for c in ("latency_ms", "latency_ms_p25", "latency_ms_p75", "floor_ms")},
    **{c: 6.048e8 for c in OPTIONAL_FLOAT_COLUMNS if c.endswith(("_ms", "_ms_p25", "_ms_p75"))},
    **{c: float(2**53) for c in ("peak_bytes", "estimated_peak_bytes", "compulsory_bytes")},
    "floor_ratio": 1e12, "peak_flops_per_s": 1e21, "peak_bytes_per_s": 1e18,
    "others_cpu_share": 1.0, "load_avg_1m": 1e6,
}
# Built-in reference data sets: result files committed with the app (see benchmarks/gpu_reference.py).
REFERENCE_DIR = Path(__file__).resolve().parent / "data" / "reference"


class ResultFileError(ValueError):
    """A result file that cannot be used; `problems` holds one sentence per problem.

    The sentences are markdown: anything quoted from the file is a code span (convmix.format.literal),
    so a file cannot put links, images or formatting on a page.
    """

    def __init__(self, name: str, problems: list[str]):
        self.name = name
        self.problems = list(problems)
        super().__init__(f"{name}: " + " ".join(self.problems))


def to_csv(df: pd.DataFrame) -> bytes:
    """The rows as CSV: required columns first (measured ones empty when not measured), then the rest."""
    out = df.copy()
    for col in REQUIRED_COLUMNS:
        if col not in out:
            out[col] = pd.NA
    for col in ("config", "label", "series", "source", "layer", "facet", "row", "spread", "noisy"):
        out = out.drop(columns=col, errors="ignore")
    out = out.drop(columns=[c for c in out.columns if str(c).endswith("_rel")])
    for col in WHOLE_NUMBER_COLUMNS:  # keep byte counts exact when some rows are unmeasured (NaN)
        if col in out:
            out[col] = pd.to_numeric(out[col]).round().astype("Int64")
    order = list(REQUIRED_COLUMNS) + [c for c in out.columns if c not in REQUIRED_COLUMNS]
    return out[order].to_csv(index=False).encode("utf-8")


def _rows_text(lines: list[int], limit: int = 5) -> str:
    """Where in the file: 'line 3', 'lines 2, 4', 'lines 2, 3, 4, 5, 6 and 7 more'."""
    shown = ", ".join(str(n) for n in lines[:limit])
    if len(lines) > limit:
        more = len(lines) - limit
        return ngettext("lines {lines} and {more:,} more", "lines {lines} and {more:,} more", more,
                        lines=shown, more=more)
    return ngettext("line {lines}", "lines {lines}", len(lines), lines=shown)


def _sentence(text: str) -> str:
    """`text` with its first letter upper-case (a no-op for Chinese)."""
    return text[:1].upper() + text[1:]


def _found(value: str) -> str:
    return literal(value, 20)


def _whole_number(text: str) -> int | None:
    """An exact whole number from CSV text: digits (any length), or a float that is exactly an integer
    below 2^53 ('64.0', '1e3'); None for anything else (empty, fractional, infinite, text)."""
    t = text.strip()
    if len(t) > 64:
        return None
    if re.fullmatch(r"\+?[0-9]+", t):
        return int(t)
    try:
        value = float(t)
    except ValueError:
        return None
    if not math.isfinite(value) or value != int(value) or abs(value) > 2**53:
        return None
    return int(value)


def _parse_rows(text: str, name: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows and each row's line number, read with the csv module (no pandas guessing: no
    index column invented from an extra field, no renaming of a repeated header to 'device.1')."""
    first = text.split("\n", 1)[0]
    if len(first) > MAX_HEADER_CHARS:
        raise ResultFileError(name, [_("Its header line has {count:,} characters; a result file's has at most "
                                       "{limit:,}.", count=len(first), limit=MAX_HEADER_CHARS)])
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise ResultFileError(name, [_("It is empty.")])
        if len(header) > MAX_COLUMNS:
            raise ResultFileError(name, [_("It has {count:,} columns; the limit is {limit:,}.",
                                           count=len(header), limit=MAX_COLUMNS)])
        rows, lines = [], []
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            if len(rows) == MAX_ROWS:
                raise ResultFileError(name, [_("It has more than {limit:,} rows; the limit is {limit:,}.",
                                               limit=MAX_ROWS)])
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else "malformed"
        raise ResultFileError(name, [_("It could not be read as CSV ({reason}).",
                                       reason=first_line[:200])]) from None
    return [c.strip() for c in header], rows, lines


def read_results(data: bytes, name: str = "the file") -> pd.DataFrame:
    """Parse and validate a result file; raise ResultFileError listing every problem found.

    Work is bounded before anything is parsed in bulk: bytes, header length, columns and rows.
    """
    if len(data) > MAX_BYTES:
        raise ResultFileError(name, [_("It is {size:,.1f} MB; the limit is {limit:,.0f} MB.",
                                       size=len(data) / 1e6, limit=MAX_BYTES / 1e6)])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ResultFileError(name, [_("It is not UTF-8 text; save it as a UTF-8 CSV file.")]) from None
    if not text.strip():
        raise ResultFileError(name, [_("It is empty.")])
    header, rows, line_numbers = _parse_rows(text, name)
    problems: list[str] = []
    counts = Counter(header)
    duplicated = sorted(c for c, n in counts.items() if n > 1)
    if duplicated:
        problems.append(ngettext("Repeated column: {columns}.", "Repeated columns: {columns}.", len(duplicated),
                                 columns=", ".join(literal(c, 40) for c in duplicated)))
    missing = [c for c in REQUIRED_COLUMNS if c not in counts]
    if missing:
        problems.append(ngettext("Missing column: {columns}.", "Missing columns: {columns}.", len(missing),
                                 columns=", ".join(missing)))
    ragged = [line for row, line in zip(rows, line_numbers, strict=True) if len(row) != len(header)]
    if ragged:
        problems.append(_sentence(_("{where} must hold {count:,} fields, as the header does.",
                                    where=_rows_text(ragged), count=len(header))))
    if problems:
        raise ResultFileError(name, problems)
    if not rows:
        raise ResultFileError(name, [_("It has a header but no rows.")])

    raw = pd.DataFrame(rows, columns=header, dtype=str)
    out = pd.DataFrame(index=raw.index)
    line = pd.Series(line_numbers, index=raw.index)
    valid: dict[str, pd.Series] = {}  # per column: the rows whose value could be read

    for col in INT_COLUMNS + tuple(c for c in OPTIONAL_INT_COLUMNS if c in raw):
        text_values = raw[col].str.strip()
        parsed = [_whole_number(t) for t in text_values]
        bad = pd.Series([v is None or v < 1 for v in parsed], index=raw.index)
        if col in OPTIONAL_INT_COLUMNS:
            bad &= text_values != ""
        if bad.any():
            example = raw.loc[bad, col].iloc[0]
            problems.append(_("Column {column}: {where} must hold whole numbers of at least 1 (found {found}).",
                              column=col, where=_rows_text(list(line[bad])), found=_found(example)))
        lo, hi = INT_RANGES[col]
        outside = pd.Series([v is not None and v >= 1 and not lo <= v <= hi for v in parsed], index=raw.index)
        if outside.any():
            problems.append(_("Column {column}: values outside {low} to {high:,} on {where}.",
                              column=col, low=lo, high=hi, where=_rows_text(list(line[outside]))))
        ok = ~bad & ~outside
        out[col] = pd.Series([v if good and v is not None else pd.NA for v, good in zip(parsed, ok, strict=True)],
                             index=raw.index, dtype="Int64")
        valid[col] = ok
    if "dilation" not in out:
        out["dilation"] = 1

    for col in MEASURED_FLOAT_COLUMNS + tuple(c for c in OPTIONAL_FLOAT_COLUMNS if c in raw):
        stripped = raw[col].str.strip()
        values = pd.to_numeric(stripped.where(stripped.str.len() <= 64), errors="coerce")
        top = FLOAT_LIMITS.get(col, 1e18)
        bad = (stripped != "") & (values.isna() | (values < 0) | ~(values <= top))
        if bad.any():
            example = raw.loc[bad, col].iloc[0]
            problems.append(_(
                "Column {column}: {where} must be a non-negative number up to {top:.3g} or empty (found {found}).",
                column=col, where=_rows_text(list(line[bad])), top=top, found=_found(example)))
        out[col], valid[col] = values.astype(float).where(~bad), ~bad

    for col in TEXT_COLUMNS:
        if col in raw:
            values = raw[col].str.strip()
            long = values.str.len() > MAX_TEXT
            if long.any():
                problems.append(_("Column {column}: text longer than {limit} characters on {where}.",
                                  column=col, limit=MAX_TEXT, where=_rows_text(list(line[long]))))
            out[col] = values

    # Checks across columns, on the rows whose values could be read (the others are reported above).
    bad_variant = ~out["variant"].isin(VARIANTS)
    if bad_variant.any():
        problems.append(_("Column variant: {where} must be one of {choices} (found {found}).",
                          where=_rows_text(list(line[bad_variant])), choices=", ".join(VARIANTS),
                          found=_found(out.loc[bad_variant, "variant"].iloc[0])))
    measured = out["latency_ms"].notna()
    bad_dtype = measured & ~out["dtype"].isin(DTYPE_BYTES)
    if bad_dtype.any():
        problems.append(_("Column dtype: {where} must be one of {choices} where a latency is given.",
                          where=_rows_text(list(line[bad_dtype])), choices=", ".join(DTYPE_BYTES)))
    no_device = measured & (out["device"] == "")
    if no_device.any():
        problems.append(_("Column device: missing on {where}, where a latency is given.",
                          where=_rows_text(list(line[no_device]))))
    readable = valid["latency_ms_p25"] & valid["latency_ms_p75"]
    partial = measured & readable & (out["latency_ms_p25"].isna() | out["latency_ms_p75"].isna())
    if partial.any():
        problems.append(_("Columns latency_ms_p25/latency_ms_p75: missing on {where}, where a latency is given.",
                          where=_rows_text(list(line[partial]))))
    unordered = measured & (
        (out["latency_ms_p25"] > out["latency_ms"]) | (out["latency_ms"] > out["latency_ms_p75"])
    )
    if unordered.any():
        problems.append(_("Latency quartiles out of order on {where}: latency_ms_p25 <= latency_ms <= "
                          "latency_ms_p75 must hold.", where=_rows_text(list(line[unordered]))))
    shape_ok = valid["in_planes"] & valid["out_planes"] & valid["head"] & valid["kernel_conv"]
    not_dividing = shape_ok & ((out["out_planes"] % out["head"]) != 0)
    if not_dividing.any():
        problems.append(_("head must divide out_planes, which fails on {where}.",
                          where=_rows_text(list(line[not_dividing]))))
    checkable = shape_ok & ~not_dividing & valid["params"]
    expected = pd.Series(
        [sum(param_formula(int(r.in_planes), int(r.out_planes), int(r.head), int(r.kernel_conv)).values())
         for r in out[checkable].itertuples()],
        index=out.index[checkable], dtype="float64",
    )
    wrong = checkable & (out["params"] != expected.reindex(out.index))
    if wrong.any():
        i = wrong.idxmax()
        problems.append(_(
            "Column params disagrees with ACmix's parameter count on {where} (line {line}: {found:,}, expected "
            "{expected:,}); the file does not describe ACmix modules.",
            where=_rows_text(list(line[wrong])), line=line[i], found=int(out.loc[i, "params"]),
            expected=int(expected[i])))
    if problems:
        raise ResultFileError(name, problems)
    for col in INT_COLUMNS:
        out[col] = out[col].astype("int64")
    out["dilation"] = out["dilation"].fillna(1).astype("int64")
    for col in ("threads", "timed_samples", "cpus"):
        if col in out:
            out[col] = out[col].astype("float64")
    out["peak_bytes"] = out["peak_bytes"].astype(float)
    out["source"] = name
    return out


def reference_files(directory: Path | None = None) -> list[Path]:
    """The built-in reference data sets (result files committed under REFERENCE_DIR), by name."""
    folder = REFERENCE_DIR if directory is None else Path(directory)
    return sorted(p for p in folder.glob("*.csv") if p.is_file()) if folder.is_dir() else []
