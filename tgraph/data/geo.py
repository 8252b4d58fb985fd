"""Great-circle geometry on a spherical Earth, vectorised with numpy.

Distances use the haversine formula on a sphere of radius :data:`EARTH_RADIUS_KM`:

.. math::
    d = 2R \\arcsin \\sqrt{\\sin^2\\frac{\\varphi_2-\\varphi_1}{2}
        + \\cos\\varphi_1 \\cos\\varphi_2 \\sin^2\\frac{\\lambda_2-\\lambda_1}{2}}

Nearest-neighbour searches embed points as 3-D unit vectors: the chord length
:math:`c = 2\\sin(d / 2R)` is monotone in the great-circle distance ``d``, so a Euclidean
k-d tree on the unit vectors returns exactly the haversine nearest neighbours.
"""

from __future__ import annotations

import numpy as np

#: mean Earth radius in km (the value used by most POI-recommendation code)
EARTH_RADIUS_KM = 6371.0
#: length of one degree of latitude in km on that sphere
KM_PER_DEGREE = np.pi * EARTH_RADIUS_KM / 180.0


def haversine(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (broadcasts like numpy)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlam = np.radians(np.asarray(lon2, dtype=float) - np.asarray(lon1, dtype=float))
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def to_unit_vectors(lat, lon) -> np.ndarray:
    """``(n, 3)`` unit vectors of points given in degrees."""
    phi, lam = np.radians(np.asarray(lat, dtype=float)), np.radians(np.asarray(lon, dtype=float))
    cos_phi = np.cos(phi)
    return np.stack([cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)], axis=-1)


def from_unit_vectors(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude in degrees of (not necessarily unit) 3-D vectors."""
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    lat = np.degrees(np.arctan2(z, np.hypot(x, y)))
    lon = np.degrees(np.arctan2(y, x))
    return lat, lon


def chord_to_km(chord) -> np.ndarray:
    """Great-circle distance in km of a chord length between unit vectors."""
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.clip(np.asarray(chord) / 2, 0.0, 1.0))


def km_to_chord(km) -> np.ndarray:
    """Chord length between unit vectors that are ``km`` apart on the sphere."""
    angle = np.minimum(np.asarray(km, dtype=float) / EARTH_RADIUS_KM, np.pi)
    return 2 * np.sin(angle / 2)
