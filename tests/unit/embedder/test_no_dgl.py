"""Serving never imports DGL: import every serving module and load an artifact with dgl blocked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CODE = """
import sys
sys.modules["dgl"] = None  # any `import dgl` now raises ImportError
import asyncio
import recsys_embedder.__main__, recsys_embedder.server, recsys_embedder.servicer, recsys_embedder.cli
import recsys_embedder.export, recsys_embedder.backends.triton_backend, recsys_embedder.backends.triton_local
from recsys_embedder.backends.loader import ArtifactLoader
from recsys_embedder.service import EmbedderService
async def main():
    s = EmbedderService(ArtifactLoader(sys.argv[1], device="cpu"))
    info = await s.load("")
    await s.close()
    print("loaded", info.meta.version)
asyncio.run(main())
assert "dgl" not in {k for k, v in sys.modules.items() if v is not None}
"""


def test_serving_imports_and_loads_without_dgl(artifact_root: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CODE, str(artifact_root)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "loaded v1" in proc.stdout
