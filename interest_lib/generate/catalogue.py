"""The synthetic store's catalogue: a category tree and the items in its leaves.

Pure Python + numpy, deterministic from the seed. The tree (families -> subcategories -> leaf
categories) is fixed; only leaves carry ids (``c001``...) because every event and item
references a leaf. Items get readable titles built from the leaf's nouns and its family's
adjectives and brands ("Lightweight trail shoes - Stride 3"), an optional description and a
log-normal price around the leaf's typical price. The same tables give the search queries and
review texts the event generator writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from interest_lib import schema as S

# family -> (adjectives, brands, feature sentences, {sub -> {leaf -> (nouns, median price)}})
TAXONOMY: dict[str, tuple[list, list, list, dict]] = {
    "sports": (
        ["Lightweight", "Breathable", "Pro", "Durable", "Waterproof", "Cushioned"],
        ["Stride", "Apex", "Velo", "Summit", "Pulse"],
        ["Built for long sessions.", "Tested by athletes.", "Made for all weather."],
        {
            "running": {"shoes": (["running shoes", "trail shoes", "racing flats"], 110.0),
                        "apparel": (["running shorts", "running jacket", "base layer"], 45.0),
                        "watches": (["GPS watch", "heart rate monitor"], 220.0)},
            "cycling": {"bikes": (["road bike", "gravel bike", "e-bike"], 1400.0),
                        "helmets": (["cycling helmet", "aero helmet"], 90.0),
                        "accessories": (["bike light", "saddle bag", "bottle cage"], 25.0)},
            "fitness": {"weights": (["dumbbell set", "kettlebell", "barbell"], 70.0),
                        "yoga": (["yoga mat", "yoga block", "resistance band"], 30.0)},
            "outdoor": {"tents": (["camping tent", "backpacking tent"], 250.0),
                        "backpacks": (["hiking backpack", "daypack"], 95.0),
                        "climbing": (["climbing shoes", "chalk bag", "harness"], 75.0)},
        },
    ),
    "baby": (
        ["Soft", "Organic", "Foldable", "Safe", "Gentle", "Compact"],
        ["Cuddle", "Tiny Steps", "Nestle", "Bloom", "Snug"],
        ["Tested for safety.", "Easy to clean.", "Loved by parents."],
        {
            "strollers": {"full_size": (["stroller", "travel system", "pram"], 450.0),
                          "compact": (["compact stroller", "buggy"], 220.0)},
            "feeding": {"bottles": (["baby bottle", "bottle warmer", "sterilizer"], 25.0),
                        "highchairs": (["high chair", "booster seat"], 110.0)},
            "nursery": {"cribs": (["crib", "bassinet", "cot mattress"], 260.0),
                        "monitors": (["baby monitor", "video baby monitor"], 120.0)},
            "clothing": {"bodysuits": (["baby bodysuit", "sleepsuit"], 18.0),
                         "sleepwear": (["baby sleeping bag", "swaddle"], 32.0)},
        },
    ),
    "electronics": (
        ["Wireless", "Smart", "Ultra", "Portable", "High-resolution", "Fast"],
        ["Voltix", "Sonar", "Pixelon", "Nimbus", "Quanta"],
        ["Two-year warranty.", "Long battery life.", "Works with every major platform."],
        {
            "audio": {"headphones": (["noise cancelling headphones", "earbuds", "headset"], 150.0),
                      "speakers": (["bluetooth speaker", "soundbar"], 120.0)},
            "computers": {"laptops": (["laptop", "ultrabook", "gaming laptop"], 1100.0),
                          "monitors": (["4K monitor", "gaming monitor"], 330.0),
                          "accessories": (["mechanical keyboard", "wireless mouse", "USB-C hub"],
                                          45.0)},
            "phones": {"smartphones": (["smartphone", "5G phone"], 650.0),
                       "cases": (["phone case", "screen protector"], 20.0),
                       "chargers": (["fast charger", "power bank"], 35.0)},
            "cameras": {"cameras": (["mirrorless camera", "action camera"], 800.0),
                        "lenses": (["prime lens", "zoom lens"], 450.0)},
        },
    ),
    "home": (
        ["Modern", "Classic", "Stainless", "Cosy", "Minimalist", "Handmade"],
        ["Hearth", "Nordhus", "Casa", "Linden", "Oakline"],
        ["Dishwasher safe.", "Designed to last.", "Fits any interior."],
        {
            "kitchen": {"cookware": (["frying pan", "saucepan set", "dutch oven"], 60.0),
                        "appliances": (["coffee machine", "blender", "air fryer"], 130.0),
                        "knives": (["chef knife", "knife block"], 55.0)},
            "furniture": {"sofas": (["sofa", "armchair"], 700.0),
                          "tables": (["dining table", "coffee table"], 300.0),
                          "storage": (["bookshelf", "wardrobe"], 220.0)},
            "bedding": {"sheets": (["bed sheets", "duvet cover"], 50.0),
                        "pillows": (["pillow", "memory foam pillow"], 35.0)},
            "decor": {"lighting": (["floor lamp", "pendant light"], 85.0),
                      "rugs": (["area rug", "runner rug"], 120.0)},
        },
    ),
    "fashion": (
        ["Slim", "Oversized", "Vintage", "Elegant", "Casual", "Linen"],
        ["Maison Vale", "Urbanite", "Loom", "Indigo", "Harbor"],
        ["Machine washable.", "Responsibly made.", "True to size."],
        {
            "women": {"dresses": (["summer dress", "maxi dress"], 60.0),
                      "coats": (["wool coat", "puffer jacket"], 140.0),
                      "swimwear": (["bikini", "swimsuit"], 40.0)},
            "men": {"shirts": (["oxford shirt", "polo shirt"], 40.0),
                    "jeans": (["slim jeans", "straight jeans"], 70.0),
                    "shoes": (["leather shoes", "loafers", "sneakers"], 95.0)},
            "accessories": {"bags": (["tote bag", "crossbody bag"], 80.0),
                            "watches": (["analog watch", "chronograph"], 160.0),
                            "sunglasses": (["sunglasses", "aviators"], 65.0)},
        },
    ),
    "beauty": (
        ["Hydrating", "Natural", "Long-lasting", "Vegan", "Fragrance-free", "Radiant"],
        ["Lumiere", "Pure Leaf", "Velvet", "Aura", "Dermalab"],
        ["Dermatologically tested.", "Cruelty free.", "Suits sensitive skin."],
        {
            "skincare": {"moisturisers": (["moisturiser", "night cream"], 28.0),
                         "serums": (["vitamin C serum", "retinol serum"], 35.0),
                         "sunscreen": (["sunscreen SPF 50", "tinted sunscreen"], 18.0)},
            "makeup": {"lips": (["lipstick", "lip gloss"], 16.0),
                       "eyes": (["mascara", "eyeshadow palette"], 22.0)},
            "haircare": {"shampoo": (["shampoo", "conditioner"], 12.0),
                         "styling": (["hair dryer", "hair straightener"], 70.0)},
            "fragrance": {"perfume": (["eau de parfum", "eau de toilette"], 75.0),
                          "aftershave": (["aftershave", "beard oil"], 30.0)},
        },
    ),
    "books": (
        ["Bestselling", "Illustrated", "Award-winning", "Paperback", "Hardcover", "New"],
        ["Penwright", "Inkwell", "Folio", "Northstar", "Quill"],
        ["A gripping read.", "Includes a new foreword.", "Recommended by critics."],
        {
            "fiction": {"thrillers": (["thriller novel", "crime novel"], 14.0),
                        "fantasy": (["fantasy novel", "epic saga"], 16.0),
                        "romance": (["romance novel", "love story"], 12.0)},
            "nonfiction": {"biography": (["biography", "memoir"], 18.0),
                           "history": (["history book", "war history"], 22.0),
                           "science": (["popular science book", "astronomy guide"], 20.0)},
            "children": {"picture_books": (["picture book", "bedtime stories"], 10.0),
                         "young_adult": (["young adult novel", "graphic novel"], 13.0)},
            "learning": {"cookbooks": (["cookbook", "baking book"], 25.0),
                         "languages": (["language course", "phrase book"], 20.0)},
        },
    ),
    "garden": (
        ["Heavy-duty", "Weatherproof", "Ergonomic", "Cordless", "Eco", "Compact"],
        ["Greenthumb", "Terra", "Fernway", "Sprout", "Meadow"],
        ["Rust resistant.", "Ideal for small gardens.", "Frost hardy."],
        {
            "plants": {"seeds": (["vegetable seeds", "flower seeds", "herb seeds"], 4.0),
                       "bulbs": (["tulip bulbs", "dahlia tubers"], 9.0),
                       "houseplants": (["monstera", "fiddle leaf fig"], 30.0)},
            "tools": {"hand_tools": (["pruning shears", "trowel", "garden fork"], 22.0),
                      "power_tools": (["lawn mower", "hedge trimmer"], 260.0)},
            "outdoor_living": {"furniture": (["garden chair", "patio set"], 230.0),
                               "bbq": (["charcoal grill", "gas barbecue"], 280.0)},
            "watering": {"hoses": (["garden hose", "hose reel"], 40.0),
                         "irrigation": (["sprinkler", "drip irrigation kit"], 35.0)},
        },
    ),
}

#: Families a "life stage" change brings in (first one the user does not already follow).
LIFE_STAGE_FAMILIES = ("baby", "home")
#: Families whose interest is seasonal (garden in spring, swimwear in summer, ...).
SEASONAL_FAMILIES = ("garden", "sports", "fashion")

_QUERY_TEMPLATES = ("{noun}", "{adj} {noun}", "{brand} {noun}", "best {noun}", "cheap {noun}",
                    "{noun} sale", "{noun} reviews", "{noun} {leaf}")
_REVIEW_TEMPLATES = (
    "Love this {noun}, exactly as described. 5 stars.",
    "Great {noun} for the price, would buy again.",
    "The {noun} arrived quickly and works well.",
    "Decent {noun}, but the {brand} one I had before was better.",
    "Disappointed: the {noun} stopped working after two weeks.",
    "Good quality {noun}; sizing/fit as expected.",
    "Not worth it. The {noun} looks cheaper than in the photos.",
    "Perfect gift, the {noun} was a hit!",
)
N_QUERIES = len(_QUERY_TEMPLATES) * 2
N_REVIEWS = len(_REVIEW_TEMPLATES)


@dataclass(frozen=True)
class Catalogue:
    """The category tree's leaves, the items, and lookup arrays used by the event generator.

    Arrays are indexed by leaf index (0..n_leaves-1) or global item index (0..n_items-1).
    """

    category_ids: np.ndarray       # object[str], per leaf: "c001"
    category_paths: np.ndarray     # object[str], per leaf: "sports/running/shoes"
    leaf_family: np.ndarray        # int, per leaf: index into ``families``
    families: tuple                # family names, in taxonomy order
    leaf_popularity: np.ndarray    # float, per leaf, sums to 1 (global interest prior)
    items_per_category: int
    item_ids: np.ndarray           # object[str], per item: "i000123"
    item_prices: np.ndarray        # float, per item
    item_price_text: np.ndarray    # object[str], per item: "109.99"
    items: pd.DataFrame            # the items table, columns of schema.ITEM_SCHEMA
    queries: np.ndarray            # object[str], [leaf * N_QUERIES + q]: search query texts
    reviews: np.ndarray            # object[str], [leaf * N_REVIEWS + r]: review texts

    @property
    def n_leaves(self) -> int:
        """Number of leaf categories."""
        return len(self.category_ids)

    def leaves_of_family(self, family: str) -> np.ndarray:
        """Leaf indices of one family."""
        return np.flatnonzero(self.leaf_family == self.families.index(family))

    def item_index(self, leaf: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """Global item index of the ``rank``-th item of each ``leaf`` (vectorised)."""
        return leaf.astype(np.int64) * self.items_per_category + rank


def _leaves() -> list[tuple[str, str, str, list, float]]:
    """(family, sub, leaf, nouns, median price) for every leaf, in taxonomy order."""
    return [
        (fam, sub, leaf, nouns, price)
        for fam, (_a, _b, _f, subs) in TAXONOMY.items()
        for sub, leaves in subs.items()
        for leaf, (nouns, price) in leaves.items()
    ]


def build_catalogue(seed: int, items_per_category: int) -> Catalogue:
    """Build the catalogue deterministically from ``seed``.

    Args:
        seed: generator seed (titles, prices and popularity depend on it; the tree does not).
        items_per_category: items in each leaf category.

    Returns:
        A :class:`Catalogue`; ``items`` has exactly the columns of :data:`schema.ITEM_SCHEMA`.
    """
    if items_per_category <= 0:
        raise ValueError(f"items_per_category must be > 0, got {items_per_category}")
    rng = np.random.default_rng([seed, 0xCA7])
    families = tuple(TAXONOMY)
    leaves = _leaves()
    n_leaves = len(leaves)
    cat_ids = np.array([f"c{i + 1:03d}" for i in range(n_leaves)], dtype=object)
    paths = np.array([f"{f}/{s}/{leaf}" for f, s, leaf, _n, _p in leaves], dtype=object)
    leaf_family = np.array([families.index(f) for f, *_ in leaves])
    ranks = rng.permutation(n_leaves)
    popularity = 1.0 / (ranks + 1.0) ** 0.7
    popularity /= popularity.sum()

    rows, queries, reviews = [], [], []
    n_items = n_leaves * items_per_category
    prices = np.empty(n_items)
    for li, (fam, _sub, leaf, nouns, median) in enumerate(leaves):
        adjs, brands, features, _subs = TAXONOMY[fam]
        leaf_words = leaf.replace("_", " ")
        # Item prices: log-normal around the leaf's typical price.
        leaf_prices = np.round(median * np.exp(rng.normal(0.0, 0.35, items_per_category)), 2)
        leaf_prices = np.maximum(leaf_prices, 0.99)
        noun_idx = rng.integers(0, len(nouns), items_per_category)
        adj_idx = rng.integers(0, len(adjs), items_per_category)
        brand_idx = rng.integers(0, len(brands), items_per_category)
        model = rng.integers(1, 10, items_per_category)
        has_desc = rng.random(items_per_category) < 0.8
        feat_idx = rng.integers(0, len(features), items_per_category)
        for k in range(items_per_category):
            gi = li * items_per_category + k
            prices[gi] = leaf_prices[k]
            noun, adj, brand = nouns[noun_idx[k]], adjs[adj_idx[k]], brands[brand_idx[k]]
            title = f"{adj} {noun} - {brand} {model[k]}"
            desc = (f"{adj} {noun} by {brand}, part of our {leaf_words} range. "
                    f"{features[feat_idx[k]]}") if has_desc[k] else None
            rows.append((f"i{gi:06d}", title, desc, cat_ids[li], paths[li], float(leaf_prices[k])))
        for q in range(N_QUERIES):
            tmpl = _QUERY_TEMPLATES[q % len(_QUERY_TEMPLATES)]
            noun = nouns[(q // len(_QUERY_TEMPLATES) + q) % len(nouns)]
            queries.append(tmpl.format(noun=noun, adj=adjs[q % len(adjs)].lower(),
                                       brand=brands[q % len(brands)].lower(),
                                       leaf=leaf_words).lower())
        for r, tmpl in enumerate(_REVIEW_TEMPLATES):
            reviews.append(tmpl.format(noun=nouns[r % len(nouns)], brand=brands[r % len(brands)]))

    items = pd.DataFrame(rows, columns=[f.name for f in S.ITEM_SCHEMA.fields])
    return Catalogue(
        category_ids=cat_ids, category_paths=paths, leaf_family=leaf_family, families=families,
        leaf_popularity=popularity, items_per_category=items_per_category,
        item_ids=items[S.ITEM_ID].to_numpy(dtype=object), item_prices=prices,
        item_price_text=np.array([f"{p:.2f}" for p in prices], dtype=object), items=items,
        queries=np.array(queries, dtype=object), reviews=np.array(reviews, dtype=object),
    )


@lru_cache(maxsize=4)
def get_catalogue(seed: int, items_per_category: int) -> Catalogue:
    """:func:`build_catalogue`, cached per process (executors build it once per worker)."""
    return build_catalogue(seed, items_per_category)
