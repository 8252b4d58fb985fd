"""The data layer's front door: protocol presets, the split builders, and :func:`prepare_split`.

- :func:`prepare_split`: a ``dataset`` config section -> a checked :class:`~tgraph.data.Split`.
- :data:`PROTOCOLS` / :func:`register_protocol` / :func:`get_protocol`: the presets
  ``dataset.protocol`` names.
- presets: :func:`getnext_nyc`, :func:`sthgcn_nyc`, :func:`gowalla_mat`,
  :func:`next_poi_chronological`, :func:`lightgcn`.
- generic builders: :func:`chronological_split`, :func:`leave_last_out`, :func:`trajectories`,
  :func:`last_of_trajectory`.

See ``docs/protocols.md`` for each preset's rules and counts.
"""

from tgraph.data.protocols.builders import (
    check_ratios,
    chronological_split,
    drop_unseen,
    last_of_trajectory,
    leave_last_out,
    require_no_duplicates,
    trajectories,
)
from tgraph.data.protocols.lightgcn import hold_out_per_user, lightgcn
from tgraph.data.protocols.mat import gowalla_mat, hold_out_trajectories, relay_weeks
from tgraph.data.protocols.next_poi import getnext_nyc, map_getnext_to_stan, next_poi_chronological
from tgraph.data.protocols.prepare import kcore_on_train, prepare_split
from tgraph.data.protocols.presets import (
    KINDS,
    PROTOCOLS,
    Protocol,
    get_protocol,
    register_protocol,
)
from tgraph.data.protocols.sthgcn import sthgcn_nyc

__all__ = [
    "KINDS",
    "PROTOCOLS",
    "Protocol",
    "check_ratios",
    "chronological_split",
    "drop_unseen",
    "get_protocol",
    "getnext_nyc",
    "gowalla_mat",
    "hold_out_trajectories",
    "hold_out_per_user",
    "kcore_on_train",
    "last_of_trajectory",
    "leave_last_out",
    "lightgcn",
    "map_getnext_to_stan",
    "next_poi_chronological",
    "prepare_split",
    "register_protocol",
    "relay_weeks",
    "require_no_duplicates",
    "sthgcn_nyc",
    "trajectories",
]
