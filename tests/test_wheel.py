"""fmlib works as a normal, non-editable package: its wheel, installed into a fresh virtual
environment, runs a notebook-like script from a folder outside the checkout.

Offline: the wheel is built from a copy of pyproject.toml, README.md and fmlib/ (pip wheel,
no build isolation, no index), installed with pip --no-deps --no-index into a new venv, and
that venv borrows the course venv's third-party packages through a .pth line (added after the
install, so pip never sees the checkout's editable fmlib). The script asserts that the fmlib
it imports is the installed one, then does what a notebook does: maths, a shipped checkpoint
(fmlib.resources), a figure view saved as PNG, an exercise check (instructor form, then student
form through a sealed key).
Run with -s to see its output.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SMOKE = """
import importlib.util, os, sys
from pathlib import Path

import fmlib
home = Path(sys.prefix).resolve()
where = Path(fmlib.__file__).resolve()
assert home in where.parents, f"fmlib imported from {where}, not from the venv {home}"
assert not any(Path(p or ".").resolve() == Path(CHECKOUT) for p in sys.path), sys.path
assert importlib.util.find_spec("fmlib").origin == str(Path(fmlib.__file__)), "two fmlibs"
print(f"fmlib {fmlib.__version__} from {where.parent}")
print(f"cwd {Path.cwd()}")

import matplotlib
matplotlib.use("Agg")
import torch
from fmlib import data, exercises, models, resources
from fmlib.paths import OTPath

# the maths: x_t on the OT path, x_0 = noise, x_1 = checkerboard data
g = torch.Generator().manual_seed(0)
x0, x1 = torch.randn(1000, 2, generator=g), data.sample("checkerboard", 1000, g)
x_half = OTPath(0.0).psi_t(x0, x1, 0.5)
assert torch.allclose(x_half, 0.5 * x0 + 0.5 * x1)
print(f"OT path: x_0.5 = (x0 + x1) / 2 for {len(x_half)} samples")

# a shipped checkpoint, found by fmlib.resources (inside the installed package)
ckpt = resources.path("checkerboard_model.pt")
assert home in ckpt.resolve().parents, ckpt
model = models.load(ckpt)
with torch.no_grad():
    u = model(x0[:8], torch.full((8,), 0.5))
assert u.shape == (8, 2) and torch.isfinite(u).all()
assert models.checkerboard_checkpoint(0.1).parent == ckpt.parent
print(f"checkpoint {ckpt.name} ({ckpt.stat().st_size} bytes) -> {type(model).__name__}, "
      f"{len(resources.names())} shipped resources")
from fmlib.figures import training as ft
runs = ft.ablation_runs(6000)  # notebook 05's table, shipped as fmlib/resources/*.json
assert runs and home in resources.path(ft.ABLATION).resolve().parents
print(f"ablation table: {len(runs)} runs of 6000 steps")

# a figure view drawn to PNG
from fmlib.figures.start import ConditionalPath
fig = ConditionalPath.draw(sigma_min=0.1, steps=4)
fig.savefig("view.png")
assert Path("view.png").read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
print(f"figure ConditionalPath -> view.png ({Path('view.png').stat().st_size} bytes)")

# an exercise check as the instructor edition writes it, then as the student edition calls it:
# the check cell sealed in a key (the course's own key ships with fmlib; its exercises change
# with the notebooks, so the script seals its own check the same way)
from fmlib import answer_key
assert all("exercises." in exercises.unseal(e["code"]) for e in answer_key.KEY.values())
CHECK = '''_ = exercises.check(
    "smoke: OT regression target", answer_target, OTPath(0.5).target(a, b, 0.3), tol=1e-6,
    mistakes={"you forgot the factor (1 - sigma_min) in front of x0": b - a},
)'''
a, b = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
answer_target = b - 0.5 * a
exec(CHECK)
assert exercises.require_correct("smoke: OT regression target") is None
import json
Path("key.json").write_text(json.dumps({"smoke: OT regression target": {
    "notebook": "smoke.py", "code": exercises.seal(CHECK), "export": []}}))
os.environ[exercises.ANSWER_KEY] = "key.json"
assert exercises.check("smoke: OT regression target", answer_target) is True
answer_target = b - a
assert exercises.check("smoke: OT regression target", answer_target) is False
print(f"answer key: {len(answer_key.KEY)} exercises shipped")
print("smoke script passed")
"""


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    start = time.monotonic()
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "fmlib", src / "fmlib", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(dist),
            str(src),
        ]
    )
    (wheel,) = dist.glob("fmlib-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n for n in names if n.startswith("fmlib/resources/") and "__" not in n)
    assert "fmlib/resources/checkerboard_model.pt" in shipped, shipped
    tops = {n.split("/")[0] for n in names}  # fmlib and its metadata: no tests, tools, notebooks
    assert tops == {"fmlib", "-".join(wheel.name.split("-")[:2]) + ".dist-info"}, tops
    built = time.monotonic() - start

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)])
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
        ).stdout.strip()
    )
    # the course venv's third-party packages, after the install (pip never saw them); a plain
    # path line runs no .pth in that folder, so the checkout's editable fmlib stays unloaded
    (site / "course_packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed = time.monotonic() - start - built

    work = tmp_path / "outside"
    work.mkdir()
    script = work / "smoke.py"
    script.write_text(f"CHECKOUT = {str(ROOT)!r}\n" + textwrap.dedent(SMOKE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = _run([str(python), str(script)], cwd=work, env=env)
    ran = time.monotonic() - start - built - installed
    print(
        f"\nwheel {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB, {len(names)} files; "
        f"{len(shipped)} of them data files in fmlib/resources/)"
    )
    print(
        f"built in {built:.1f} s, installed into {env_dir} in {installed:.1f} s, "
        f"smoke script in {ran:.1f} s"
    )
    print(result.stdout, end="")
    assert "smoke script passed" in result.stdout


def test_fmlib_finds_no_file_from_its_own_location():
    """No module finds a file from where its source sits (Path(__file__), .parents[...]): an
    installed fmlib has no repository around it. fmlib.resources.path is the one way to a
    shipped file."""
    found = []
    for path in sorted((ROOT / "fmlib").rglob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "__file__" in line or ".parents[" in line or ".parent.parent" in line:
                found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert found == [], "\n".join(found)
