"""A model for ``test_tune_ddp``, imported by its study files (``imports``).

``bprmf_handshake`` is BPR-MF whose first build on a group's rank 0 waits (at most 120 s)
until ``$TGRAPH_TEST_GROUPS`` groups have each started a trial (one file per rank 0 in
``$TGRAPH_TEST_HANDSHAKE``): every group then holds a trial of the study, whatever the
start-up times of the groups, so that the test may require each to have run one."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tgraph.models.bprmf import BPRMF
from tgraph.models.registry import register

_waited = False


@register("bprmf_handshake")
class HandshakeBPRMF(BPRMF):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        global _waited
        folder = os.environ.get("TGRAPH_TEST_HANDSHAKE")
        if _waited or not folder or os.environ.get("RANK", "0") != "0":
            return
        _waited = True
        (Path(folder) / str(os.getpid())).touch()
        deadline = time.monotonic() + 120
        while len(os.listdir(folder)) < int(os.environ["TGRAPH_TEST_GROUPS"]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the other groups never started a trial ({folder})")
            time.sleep(0.1)
