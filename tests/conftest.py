import mpmath as mp
import pytest


@pytest.fixture(autouse=True)
def _reset_numeric_state():
    """Every test starts and ends with the default global numeric state."""
    import torch

    dps = mp.mp.dps
    dtype = torch.get_default_dtype()
    state = torch.random.get_rng_state()
    yield
    assert mp.mp.dps == dps, "a test or library call leaked a global mp.dps change"
    mp.mp.dps = dps
    torch.set_default_dtype(dtype)
    torch.random.set_rng_state(state)


@pytest.fixture(scope="session")
def quick_cfg():
    from derivations.config import make_config

    return make_config(quick=True, device="cpu")


@pytest.fixture(scope="session")
def audit_cache(quick_cfg):
    """Audit results per derivation, computed once per session."""
    from derivations import get
    from derivations.audit import audit_derivation

    cache = {}

    def run(der_id):
        if der_id not in cache:
            cache[der_id] = audit_derivation(get(der_id), quick_cfg)
        return cache[der_id]

    return run


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (full-size convergence and sweeps)")


TEX_TOOLS = ("latexmk", "pdflatex", "pdftotext")   # what a test marked ``tex`` may call


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    from derivations.formal import coqc_path

    has_coq = coqc_path() is not None
    import shutil

    missing_tex = [t for t in TEX_TOOLS if shutil.which(t) is None]
    skip_tex = pytest.mark.skip(reason=f"no {', '.join(missing_tex)} (TeX: latexmk, pdflatex; "
                                       "poppler: pdftotext)")
    skip_coq = pytest.mark.skip(reason="no coqc (apt-get install coq libcoq-interval libcoq-coquelicot)")
    skip = pytest.mark.skip(reason="no CUDA device")
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip)
        if "coq" in item.keywords and not has_coq:
            item.add_marker(skip_coq)
        if "tex" in item.keywords and missing_tex:
            item.add_marker(skip_tex)
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
