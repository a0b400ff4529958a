"""Reference tables of the realistic profile: cities, merchant categories and their spend levels.

Small, hand-picked and documented on purpose: a simulation is only as believable as the habits it
encodes, and these are the habits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.simulator.columns import F64


@dataclass(frozen=True)
class City:
    """A place where cards live and card-present merchants trade."""

    name: str
    latitude: float
    longitude: float
    country: str
    currency: str
    weight: float  # share of cards and merchants, relative


CITIES: tuple[City, ...] = (
    City("Brussels", 50.8503, 4.3517, "BE", "EUR", 3.0),
    City("Paris", 48.8566, 2.3522, "FR", "EUR", 4.0),
    City("Amsterdam", 52.3676, 4.9041, "NL", "EUR", 2.0),
    City("Berlin", 52.5200, 13.4050, "DE", "EUR", 3.0),
    City("Madrid", 40.4168, -3.7038, "ES", "EUR", 2.5),
    City("London", 51.5072, -0.1276, "GB", "GBP", 4.0),
    City("Rome", 41.9028, 12.4964, "IT", "EUR", 2.0),
    City("Warsaw", 52.2297, 21.0122, "PL", "PLN", 1.5),
    City("Stockholm", 59.3293, 18.0686, "SE", "SEK", 1.0),
    City("Lisbon", 38.7223, -9.1393, "PT", "EUR", 1.0),
)
COUNTRIES: tuple[str, ...] = tuple(sorted({c.country for c in CITIES}))
CURRENCIES: tuple[str, ...] = tuple(sorted({c.currency for c in CITIES}))


@dataclass(frozen=True)
class Category:
    """A merchant category: its MCC, how much a purchase costs relative to the card's habit."""

    mcc: int
    amount_factor: float
    weight: float


# Everyday card-present categories: grocery, restaurants, fuel, pharmacy, department stores,
# fast food.
PRESENT_CATEGORIES: tuple[Category, ...] = (
    Category(5411, 1.0, 5.0),
    Category(5812, 1.3, 2.0),
    Category(5541, 1.5, 1.5),
    Category(5912, 0.7, 1.0),
    Category(5311, 2.0, 1.0),
    Category(5814, 0.35, 2.0),
)
# Everyday online categories (online retail, ride hailing, digital goods, subscriptions).
ONLINE_CATEGORIES: tuple[Category, ...] = (
    Category(5999, 1.5, 3.0),
    Category(4121, 0.6, 1.5),
    Category(5815, 0.3, 1.5),
    Category(4899, 0.4, 1.0),
)
# Categories fraudsters cash out through and ordinary cards never use here (electronics, jewellery,
# gambling, money transfer): what makes an account takeover's merchant category "unusual".
HIGH_RISK_CATEGORIES: tuple[Category, ...] = (
    Category(5732, 3.0, 1.0),
    Category(5944, 4.0, 1.0),
    Category(7995, 2.0, 1.0),
    Category(4829, 2.5, 1.0),
)
HIGH_RISK_MCCS = frozenset(c.mcc for c in HIGH_RISK_CATEGORIES)
EARTH_RADIUS_KM = 6_371.0


def haversine_km(lat1: F64, lon1: F64, lat2: F64, lon2: F64) -> F64:
    """Great-circle distance in km, element-wise.

    >>> float(haversine_km(np.array([0.0]), np.array([0.0]), np.array([0.0]), np.array([1.0]))[0])
    111.19492664455873
    """
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dlmb = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    distance: F64 = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))
    return distance
