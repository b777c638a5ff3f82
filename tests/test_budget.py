"""The memory budget: estimates from shapes match what is really allocated, and refusals help."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from convmix import budget
from convmix.config import ACmixConfig
from convmix.format import human_bytes
from convmix.i18n import _, language
from convmix.memory import MKLDNN_SCRATCH_BYTES, measure_peak_bytes
from convmix.trace import estimate_trace_bytes, trace_forward
from tests.library_messages import assert_translated, in_both

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def _random_configs(n: int, seed: int):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        cfg = ACmixConfig(
            in_planes=rng.choice([3, 8]), out_planes=rng.choice([4, 8, 16]), head=rng.choice([1, 2, 4]),
            kernel_att=rng.choice([1, 3, 5, 7]), kernel_conv=rng.choice([1, 3, 5]),
            stride=rng.choice([1, 2, 3]), dilation=rng.choice([1, 2]), height=rng.randint(5, 20),
            width=rng.randint(5, 20), batch=rng.choice([1, 2]), variant=rng.choice(["fixed", "official"]),
        )
        if not cfg.problems():
            out.append(cfg)
    return out


@pytest.mark.parametrize("cfg", _random_configs(30, seed=7), ids=lambda c: c.describe())
def test_trace_estimate_equals_the_traced_tensors(cfg):
    trace = trace_forward(cfg.build(), cfg.make_input())
    assert estimate_trace_bytes(cfg) == trace.tensor_bytes()


@pytest.mark.parametrize("cfg", _random_configs(10, seed=8), ids=lambda c: c.describe())
def test_forward_estimate_bounds_what_a_forward_needs(cfg):
    module, x = cfg.build(), cfg.make_input()
    needed = measure_peak_bytes(module, x)
    held = sum(p.numel() * p.element_size() for p in module.parameters()) + x.numel() * x.element_size()
    estimate = budget.forward_bytes(cfg)
    assert needed + held <= estimate <= 3 * (needed + held) + MKLDNN_SCRATCH_BYTES


@pytest.mark.parametrize(
    "text, value",
    [("1GiB", 1 << 30), ("512 MiB", 512 << 20), ("2e9", 2_000_000_000), ("1.5g", 3 << 29), (4096, 4096)],
)
def test_parse_bytes(text, value):
    assert budget.parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "lots", "-1GiB", "0", "1 parsec", "1e400e", "1e999", "9" * 400, "2PiB",
                                  "1e30", True, 0])
def test_parse_bytes_refuses_nonsense(text):
    """Item 9: '1e999' used to raise OverflowError (int(inf)); every bad value is a ValueError."""
    with pytest.raises(ValueError):
        budget.parse_bytes(text)


@pytest.mark.parametrize("text, seconds", [("30", 30.0), ("2.5", 2.5), ("90s", 90.0), ("2min", 120.0), (45, 45.0)])
def test_parse_seconds(text, seconds):
    assert budget.parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-3", "1e999", "inf", "nan", "soon", "9" * 400])
def test_parse_seconds_refuses_nonsense(text):
    with pytest.raises(ValueError):
        budget.parse_seconds(text)


@pytest.mark.parametrize("value", ["1e999", "lots", "-1", "9" * 400])
def test_an_unreadable_setting_is_named_and_skipped_not_raised(monkeypatch, value):
    """Item 9: CONVMIX_MEMORY_BUDGET=1e999 (or the secret) must not take the app down."""
    monkeypatch.setenv(budget.BUDGET_ENV, value)
    limit, note = budget.configured_budget("512MiB")
    assert limit == 512 << 20 and budget.BUDGET_ENV in note and "cannot be used" in note
    assert budget.memory_budget() == budget.DEFAULT_BUDGET
    monkeypatch.setenv(budget.TIME_LIMIT_ENV, value)
    assert budget.time_limit() == budget.DEFAULT_TIME_LIMIT
    assert budget.configured_time_limit("12")[0] == 12.0


def test_budget_comes_from_the_environment_then_the_secret(monkeypatch):
    """(The default 1 GiB is the whole process's budget: see the tests of held memory below.)"""
    monkeypatch.delenv(budget.BUDGET_ENV, raising=False)
    assert budget.memory_budget() == budget.DEFAULT_BUDGET
    assert budget.memory_budget("256MiB") == 256 << 20
    monkeypatch.setenv(budget.BUDGET_ENV, "2GiB")
    assert budget.memory_budget("256MiB") == 2 << 30


def test_a_configuration_within_budget_passes():
    assert budget.check(ACmixConfig(), budget.DEFAULT_BUDGET, held=0) is None


@pytest.mark.parametrize(
    "cfg",
    [
        ACmixConfig(batch=64, height=512, width=512),
        ACmixConfig(in_planes=2048, out_planes=2048, kernel_att=31, height=1024, width=1024, batch=64),
        ACmixConfig(stride=4, height=1024, width=1024, batch=8, kernel_att=15),
    ],
)
def test_refusal_names_estimate_budget_and_a_nearby_fit(cfg):
    limit = 1 << 30
    refusal = budget.check(cfg, limit, budget.trace_bytes, "Tracing this forward pass", held=0)
    assert refusal is not None
    assert refusal.estimate == budget.trace_bytes(cfg) > limit
    assert refusal.nearby is not None and not refusal.nearby.problems()
    assert budget.trace_bytes(refusal.nearby) <= limit
    text = refusal.message()
    assert "1.0 GiB" in text and "nearby configuration" in text and refusal.change in text


def test_pages_refuse_to_build_a_module_over_budget(app, headroom):
    """Weights alone over what is left of the budget: home and the bias page (its tab on ACmix, the
    only part that builds one) say so and build nothing."""
    limit = headroom(128 << 20)
    big = dict(in_planes=2048, out_planes=2048, kernel_conv=15, variant="fixed", height=16, width=16)
    assert budget.module_bytes(ACmixConfig(**big)) > 128 << 20
    for page, view in ((None, {}), ("pages/bias.py", {"bias_view": "acmix"})):
        at = app(page=page, query_params={**big, **view})
        assert not at.exception
        warnings = " ".join(w.value for w in at.warning)
        assert "Building this module would need about" in warnings
        assert f"over this server's memory budget of {human_bytes(limit)}" in warnings


def test_secret_budget_is_adopted_when_no_environment_variable(monkeypatch):
    # Empty counts as unset; monkeypatch puts back whatever was there before, also after the app
    # has set the variable from the secret.
    monkeypatch.setenv(budget.BUDGET_ENV, "")
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets["memory_budget"] = "64MiB"
    at.run()
    assert not at.exception
    assert os.environ[budget.BUDGET_ENV] == str(64 << 20)


def test_an_unreadable_budget_setting_does_not_break_the_app(monkeypatch):
    """Item 9: $CONVMIX_MEMORY_BUDGET=1e999 or secrets.memory_budget = "1e999": pages still run."""
    monkeypatch.setenv(budget.BUDGET_ENV, "1e999")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    monkeypatch.setenv(budget.BUDGET_ENV, "")
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets["memory_budget"] = "1e999"
    at.secrets["time_limit"] = "forever"
    at.run()
    assert not at.exception
    assert os.environ[budget.BUDGET_ENV] == "" and os.environ.get(budget.TIME_LIMIT_ENV, "") == ""


# -- item 5: the budget limits the whole process ---------------------------------------------------------
def _statm_resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc (Linux)")
def test_held_bytes_is_the_resident_memory_and_sees_new_allocations():
    import torch

    before = budget.held_bytes()
    assert abs(before - _statm_resident()) < 64 << 20
    ballast = torch.ones(200 << 18)  # 200 MiB, touched
    assert budget.held_bytes() - before >= 180 << 20
    del ballast
    assert budget.held_bytes() - before < 64 << 20  # freed, and handed back by malloc_trim


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc (Linux)")
def test_a_request_that_fits_the_budget_alone_is_refused_beside_what_the_process_holds():
    """Item 5: the budget used to be per operation, on top of a process already holding 400-700 MB."""
    import torch

    config = ACmixConfig(batch=4)
    need = budget.forward_bytes(config)
    ballast = torch.ones(300 << 18)  # this process now holds 300 MiB more
    limit = budget.held_bytes() + need // 2
    assert need <= limit  # alone it fits: the old, per-operation check passed it
    refusal = budget.check(config, limit)
    assert refusal is not None and refusal.held >= 300 << 20
    assert "this server holds now" in refusal.message()
    assert refusal.nearby is not None and refusal.held + refusal.nearby_estimate <= limit
    del ballast


def test_reservations_keep_two_requests_from_taking_the_same_bytes():
    config = ACmixConfig(batch=8)
    need = budget.forward_bytes(config)
    limit = budget.in_use() + need + need // 2  # room for one, not two
    with budget.admitted(config, limit) as reserved:
        assert reserved == need and budget.reserved_bytes() >= need
        with pytest.raises(budget.OverBudget) as err:
            with budget.admitted(config, limit):
                pass
        assert "would need about" in str(err.value)
    with budget.admitted(config, limit):  # released: fits again
        pass


def test_admission_makes_room_before_it_refuses():
    import torch

    config = ACmixConfig(batch=8)
    need = budget.forward_bytes(config)
    cache = [torch.ones(need // 4 + (1 << 20)) for _ in range(3)]  # held "cache entries"
    limit = budget.held_bytes() + need - need // 2

    def evict() -> bool:
        if not cache:
            return False
        cache.pop()
        return True

    with budget.admitted(config, limit, make_room=evict):
        assert len(cache) < 3  # entries were evicted until the request fitted
    with pytest.raises(budget.OverBudget):
        with budget.admitted(config, budget.held_bytes() + 1, make_room=lambda: False):
            pass


def test_tiny_work_is_always_admitted():
    assert budget.check(ACmixConfig(in_planes=4, out_planes=4, height=8, width=8), 1) is None


def _peak_since_reset() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's VmHWM reset")
@pytest.mark.parametrize("cfg", [ACmixConfig(in_planes=16, out_planes=256, head=8, kernel_conv=15, variant="fixed"),
                                 ACmixConfig(in_planes=64, out_planes=512, head=4, kernel_conv=15, variant="fixed")],
                         ids=lambda c: c.describe())
def test_build_estimate_covers_building_the_module(cfg):
    """Item 3: building a module replaces dep_conv's first weight while it is alive (out·kc⁴ values
    twice): a 445 MB module peaks near 840 MB while it is built. Measured as the process's peak
    resident memory (the weights are created and dropped inside PyTorch, unseen by a dispatch mode)."""
    ACmixConfig().build()  # the first build loads code; not what is measured
    held = budget.held_bytes()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    module = cfg.build()
    peak = _peak_since_reset() - held
    weights = 4 * sum(p.numel() for p in module.parameters())
    assert weights == budget.module_bytes(cfg)
    assert weights + 0.8 * (budget.build_bytes(cfg) - weights) < peak <= budget.build_bytes(cfg) + (16 << 20)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc (Linux)")
def test_freed_heap_goes_back_to_the_system_after_a_run():
    """What a page freed but the C allocator kept counts against a container until it is handed back
    (200 MB in heap-sized pieces, pinned apart by small survivors, as a page's temporaries are)."""
    import torch

    budget.held_bytes()
    blocks, pins = [], []
    for _block in range(2000):
        blocks.append(torch.ones(100_000 // 4))
        pins.append(torch.ones(64))
    del blocks
    kept = budget.resident_bytes()
    budget.release_freed_memory()
    assert budget.resident_bytes() < kept - (150 << 20)
    before = budget.resident_bytes()
    budget.release_freed_memory()  # nothing grew since: nothing to do
    assert abs(budget.resident_bytes() - before) < 8 << 20
    del pins


# -- every message in Chinese ---------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: budget.parse_bytes(True), lambda: budget.parse_bytes("lots"), lambda: budget.parse_bytes("1e999"),
    lambda: budget.parse_bytes("0.5"), lambda: budget.parse_seconds(False), lambda: budget.parse_seconds("soon"),
    lambda: budget.parse_seconds("0"),
], ids=["bool", "words", "huge", "below one", "seconds bool", "seconds words", "zero seconds"])
def test_unreadable_values_are_told_in_chinese(make):
    assert_translated(*in_both(make))


def test_configuration_notes_in_chinese_and_the_log_in_english(monkeypatch, caplog):
    monkeypatch.setenv(budget.BUDGET_ENV, "lots")
    english, chinese = in_both(lambda: budget.configured_budget()[1])
    assert_translated(english, chinese)
    assert budget.BUDGET_ENV in chinese
    budget._warned.clear()
    with language("zh"), caplog.at_level("WARNING"):
        budget.memory_budget()
    assert "cannot be used" in caplog.text  # the operator's log stays English


def _refusals():
    big = ACmixConfig(batch=64, height=512, width=512)
    return {
        "nearby, beside what is held": lambda: budget.check(big, 1 << 30, held=200 << 20).message(),
        "nearby, alone": lambda: budget.check(big, 1 << 30, held=0).message(),
        "nothing nearby": lambda: budget.check(big, 1 << 20, held=0).message(),
        "input and batch changed": lambda: budget.check(big, 64 << 20, held=0).change,
        "seconds, nearby": lambda: budget.check_time(big, 10.0, lambda c: c.batch * c.height * 1e-3,
                                                    budget.N_("This forward pass")).message(),
        "seconds, nothing nearby": lambda: budget.check_time(big, 1e-9, lambda c: 1.0, "x").message(),
        "without a configuration": lambda: budget.check_bytes(
            64 << 20, 1 << 20, budget.N_("This forward pass"), held=0,
            advice=_("Choose a smaller input size.")).message(),
    }


@pytest.mark.parametrize("case", list(_refusals()))
def test_every_refusal_in_chinese(case):
    english, chinese = in_both(_refusals()[case])
    assert_translated(english, chinese)


def test_a_phrase_translated_by_its_caller_is_kept():
    with language("zh"):
        refusal = budget.check_bytes(64 << 20, 1 << 20, _("Building this module"), held=0)
        assert refusal.message().startswith("构建这个模块")


def test_reserved_admits_work_without_a_configuration(headroom):
    limit = headroom(64 << 20)
    before = budget.reserved_bytes()
    with budget.reserved(32 << 20, limit, "x") as need:
        assert need == 32 << 20 and budget.reserved_bytes() == before + need
        asked = []  # make_room is asked while the work does not fit, until it has nothing to give
        with pytest.raises(budget.OverBudget, match="Try later"):
            with budget.reserved(48 << 20, limit, "Other work", make_room=lambda: len(asked) < 2 and not asked.append(1),
                                 advice="Try later."):
                pass
        assert len(asked) == 2
    assert budget.reserved_bytes() == before
