"""What the README promises a newcomer: the install order, and what `variant="official"` runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_constraints import authors_forward

from convmix.config import ACmixConfig

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_the_cpu_torch_choice_comes_before_the_install_command():
    cpu = README.index("pip install torch --index-url https://download.pytorch.org/whl/cpu")
    install = README.index("pip install -r requirements.txt && streamlit run streamlit_app.py")
    assert cpu < install
    assert README.index("CUDA build") < install  # the choice is explained before it is made


def test_the_readme_says_where_official_goes_beyond_the_authors_code():
    assert "value for value wherever their\ncode runs" in README
    assert "float64 and half precision" in README and "channels-last inputs with a batch above 1" in README


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_official_runs_in_other_precisions(dtype):
    config = ACmixConfig(in_planes=4, out_planes=8, head=2, kernel_att=3, height=6, width=6)
    module = config.build().to(dtype)
    with torch.no_grad():
        out = module(config.make_input(dtype=dtype))
        ref = config.build()(config.make_input())
    assert out.dtype == dtype
    tol = {torch.float64: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    assert float((out.float() - ref).abs().max()) <= tol * float(ref.abs().max())


def test_official_runs_channels_last_with_a_batch_where_the_authors_code_crashes():
    config = ACmixConfig(in_planes=4, out_planes=8, head=2, kernel_att=3, height=6, width=6, batch=2)
    module = config.build()
    x = config.make_input()
    with torch.no_grad():
        torch.testing.assert_close(module(x.to(memory_format=torch.channels_last)), module(x))
    with pytest.raises(RuntimeError):  # q.view on a channels-last q
        authors_forward(4, 8, 3, 2, 3, 1, 1, 6, 6, x=x.to(memory_format=torch.channels_last))
    authors_forward(4, 8, 3, 2, 3, 1, 1, 6, 6, x=x)  # the same input, channels first, runs
