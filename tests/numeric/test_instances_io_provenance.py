"""Direct tests of numeric.instances (the model's random instances), numeric.io (atomic writes,
paths checked up front) and numeric.provenance."""
import json
import math
import os

import mpmath as mp
import numpy as np
import pytest
import torch

from numeric import instances, io, provenance
from numeric.errors import InputError
from numeric.params import make_params


# ------------------------------------------------------------------------------- instances
def test_haar_is_orthogonal_with_a_positive_r_diagonal():
    z = np.random.default_rng(3).standard_normal((6, 6))
    q = instances.haar(z)
    assert np.allclose(q.T @ q, np.eye(6), atol=1e-12)
    r = q.T @ z                                    # z = q r with r upper triangular
    assert np.allclose(np.tril(r, -1), 0, atol=1e-12) and (np.diag(r) > 0).all()
    # the sign fix makes q a function of z alone: flipping a column of z flips that of q
    z2 = z.copy()
    z2[:, 2] *= -1
    q2 = instances.haar(z2)
    assert np.allclose(q2[:, 2], -q[:, 2]) and np.allclose(np.delete(q2, 2, 1), np.delete(q, 2, 1))


def test_torch_instance_has_the_parameters_spectra():
    p = make_params(d=6, k=4, n=20, r=1, sigma=0.5, shift_sv=(3.0, 1.0), cov_eigs=(4, 3, 2, 1, 1, 1),
                    seed=5)
    t = instances.torch_instance(p)
    sv = torch.linalg.svdvals(t["Delta"])
    assert torch.allclose(sv[:2], torch.tensor([3.0, 1.0], dtype=torch.float64), atol=1e-12)
    assert float(sv[2:].abs().max()) < 1e-12
    ev = torch.linalg.eigvalsh(t["Sigma"]).flip(0)
    assert torch.allclose(ev, torch.tensor([4.0, 3, 2, 1, 1, 1], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(t["SigmaHalf"] @ t["SigmaHalf"], t["Sigma"], atol=1e-12)


def test_same_seed_same_instance_in_both_backends_and_other_seed_another():
    p = make_params(d=5, k=3, n=12, r=1, sigma=1.0, shift_sv=(2.0, 1.0), seed=9)
    t = instances.torch_instance(p)
    assert torch.equal(instances.torch_instance(p)["Delta"], t["Delta"])
    with mp.workdps(30):
        m = instances.mp_instance(p)
        as_float = np.array(m["Delta"].tolist(), dtype=float)
    assert np.allclose(as_float, t["Delta"].numpy(), atol=1e-12)
    other = instances.torch_instance(make_params(p, seed=10))
    assert not torch.allclose(other["Delta"], t["Delta"])


def test_draw_torch_shapes_and_noise_scale():
    p = make_params(d=4, k=3, n=7, r=1, sigma=2.0, shift_sv=(1.0,), seed=1)
    inst = instances.torch_instance(p)
    gen = torch.Generator().manual_seed(0)
    out = instances.draw_torch(("X", "E", "G"), inst, 2000, gen)
    assert out["X"].shape == (2000, 4, 7) and out["E"].shape == (2000, 3, 7)
    assert out["G"].shape == (2000, 3, 4)
    sd = float(out["E"].std())
    assert abs(sd - 2.0) < 0.02                    # 42000 entries: SE of the sd ~ 0.007


# ------------------------------------------------------------------------------------- io
def test_write_json_atomic_round_trip_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "r.json"
    io.write_json_atomic(target, {"a": 1.5, "inf": math.inf, "t": (1, 2), "np": np.float64(2.0)})
    assert json.loads(target.read_text()) == {"a": 1.5, "inf": "inf", "t": [1, 2], "np": 2.0}
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~io._umask())


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "r.txt"
    io.write_text_atomic(target, "old\n")

    class Boom:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(TypeError):
        io.write_text_atomic(target, Boom())       # fh.write refuses a non-string
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.txt"]


def test_paths_are_checked_up_front(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert io.check_dir_writable(tmp_path / "new" / "dir", "--out") == tmp_path / "new" / "dir"
    assert not (tmp_path / "new").exists()         # checking creates nothing
    for bad, what in ((f, "is not a folder"), (f / "below", "is a file"), ("", "empty path")):
        with pytest.raises(InputError, match=what):
            io.check_dir_writable(bad, "--out")
    assert io.check_file_writable(tmp_path / "out.json", "--json") == tmp_path / "out.json"
    with pytest.raises(InputError, match="is a folder"):
        io.check_file_writable(tmp_path, "--json")
    with pytest.raises(InputError, match="is a file"):
        io.check_file_writable(f / "x.json", "--json")
    if os.geteuid() != 0:                         # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(InputError, match="cannot write"):
                io.check_dir_writable(ro / "x", "--out")
        finally:
            ro.chmod(0o700)


# ----------------------------------------------------------------------------- provenance
def test_provenance_names_code_libraries_machine_and_extra_fields():
    prov = provenance.provenance("cpu", seed=7, trials=3)
    assert prov["seed"] == 7 and prov["trials"] == 3
    assert set(provenance.LIBRARIES) <= set(prov["libraries"]) and "python" in prov["libraries"]
    assert prov["libraries"]["numpy"] == np.__version__
    assert prov["date"].endswith(" UTC") and prov["machine"]
    assert "device" in prov and "device" not in provenance.provenance()
    rev = prov["git_revision"]
    assert rev == "unknown" or len(rev.split("+")[0]) == 12


def test_library_versions_say_absent_for_a_missing_library(monkeypatch):
    monkeypatch.setattr(provenance, "LIBRARIES", ("numpy", "no-such-library-xyz"))
    assert provenance.library_versions()["no-such-library-xyz"] == "absent"


def test_random_shape_draws_a_proper_rank_and_a_sorted_spectrum():
    import numpy as np

    from numeric.instances import random_shape

    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(200):
        d, k, r, sv = random_shape(rng, 7, 6)
        assert 3 <= d <= 6 and 2 <= k <= 5 and 1 <= r < min(d, k)
        assert len(sv) == min(d, k) and np.all(np.diff(sv) <= 0)
        assert 0.2 <= sv.min() and sv.max() <= 3.0
        seen.add((d, k))
    assert len(seen) == 4 * 4                                   # every shape is reachable
    # the draw order is part of the contract: the same stream gives the same shapes
    a = [random_shape(np.random.default_rng(1), 6, 5) for _ in range(3)]
    b = [random_shape(np.random.default_rng(1), 6, 5) for _ in range(3)]
    assert all(x[:3] == y[:3] and np.array_equal(x[3], y[3]) for x, y in zip(a, b))


@pytest.mark.parametrize("dps", [30, 50, 80])
def test_mp_instance_cache_gives_fresh_copies_of_the_exact_values(dps):
    import mpmath as mp

    from numeric import instances
    from numeric.params import make_params

    p = make_params(d=5, k=3, n=9, cov_eigs=(1, 2, 3, 4, 5), shift_sv=(2.0, 0.5), seed=11)
    with mp.workdps(dps):
        a = instances.mp_instance(p)
        fresh = instances._mp_instance(p)
        assert all(a[k] == fresh[k] for k in fresh)          # cached = computed, bit for bit
        a["Delta"][0, 0] = 123                                 # a caller writing to its copy
        assert instances.mp_instance(p)["Delta"][0, 0] == fresh["Delta"][0, 0]
    with mp.workdps(dps + 20):                                 # the precision is in the key
        finer = instances.mp_instance(p)
        assert finer["Delta"][0, 0] != fresh["Delta"][0, 0]
        assert abs(finer["Delta"][0, 0] - fresh["Delta"][0, 0]) < mp.mpf(10) ** (3 - dps)
