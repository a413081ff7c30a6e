"""`import speechfl` with a torch/torchaudio pair that does not load fails with one line naming both and the fix."""

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _import_speechfl(tmp_path: Path, torchaudio_init: str) -> subprocess.CompletedProcess:
    fake = tmp_path / "torchaudio"
    fake.mkdir()
    (fake / "__init__.py").write_text(torchaudio_init)
    (fake / "functional.py").write_text("")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    return subprocess.run([sys.executable, "-c", "import speechfl"], env=env, capture_output=True, text=True,
                          timeout=120)


def test_broken_pair_fails_with_one_line_naming_versions_and_fix(tmp_path):
    # What torchaudio 2.11.1 does beside torch 2.11.0: its extension needs a symbol only newer torch has.
    proc = _import_speechfl(tmp_path, "raise OSError('Could not load this library: libtorchaudio.so: undefined "
                                      "symbol: torch_exception_get_what_without_backtrace')\n")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("speechfl.TorchPairError: speechfl: torchaudio ")
    assert f"torchaudio {metadata.version('torchaudio')} does not load with torch {metadata.version('torch')}" in last
    assert "torch_exception_get_what_without_backtrace" in last
    assert "requirements.lock" in last
    assert "libtorchaudio" not in proc.stderr.replace(last, "")  # no loader traceback before the one line


def test_working_pair_imports(tmp_path):
    proc = _import_speechfl(tmp_path, "")  # a torchaudio that loads
    assert proc.returncode == 0, proc.stderr


def test_lock_pins_the_pair_the_package_names():
    import speechfl

    lock = (ROOT / "requirements.lock").read_text().splitlines()
    torch_v, audio_v = speechfl.LOCKED_TORCH_PAIR
    assert f"torch=={torch_v}" in lock and f"torchaudio=={audio_v}" in lock
    assert f"TORCH_PAIR ?= torch=={torch_v} torchaudio=={audio_v}" in (ROOT / "Makefile").read_text()
