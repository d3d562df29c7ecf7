"""The `cluster` every trigger test module shares: the official client on the module's own `kube` emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sensors.kube import KubeCluster
from tests.kube.emulator import Handle
from tests.sensors.triggers import cluster_for


@pytest.fixture
async def cluster(kube: Handle, tmp_path: Path) -> AsyncIterator[KubeCluster]:
    c = cluster_for(kube, tmp_path)
    yield c
    await c.close()
