"""The benchmark worlds by name: UnlearnCanvas (defined here) and canvas-mini
(:mod:`spare.data.canvas_mini`), both registered in :mod:`spare.catalogue`.

The catalogue classes are re-exported here, so ``from spare.concepts import Catalogue`` keeps working.
"""

from __future__ import annotations

from spare.catalogue import (  # noqa: F401  (re-exported)
    KINDS,
    PROMPT_TEMPLATE,
    Catalogue,
    Concept,
    Kind,
    UnknownConceptError,
    normalise,
    register_catalogue,
    registered_catalogue,
    registered_names,
)

UNLEARNCANVAS = Catalogue(
    name="unlearncanvas",
    styles=(
        "Abstractionism",
        "Artist_Sketch",
        "Blossom_Season",
        "Bricks",
        "Byzantine",
        "Cartoon",
        "Cold_Warm",
        "Color_Fantasy",
        "Comic_Etch",
        "Crayon",
        "Cubism",
        "Dadaism",
        "Dapple",
        "Defoliation",
        "Early_Autumn",
        "Expressionism",
        "Fauvism",
        "French",
        "Glowing_Sunset",
        "Gorgeous_Love",
        "Greenfield",
        "Impressionism",
        "Ink_Art",
        "Joy",
        "Liquid_Dreams",
        "Magic_Cube",
        "Meta_Physics",
        "Meteor_Shower",
        "Monet",
        "Mosaic",
        "Neon_Lines",
        "On_Fire",
        "Pastel",
        "Pencil_Drawing",
        "Picasso",
        "Pop_Art",
        "Red_Blue_Ink",
        "Rust",
        "Sketch",
        "Sponge_Dabbed",
        "Structuralism",
        "Superstring",
        "Surrealism",
        "Ukiyoe",
        "Van_Gogh",
        "Vibrant_Flow",
        "Warm_Love",
        "Warm_Smear",
        "Watercolor",
        "Winter",
    ),
    extra_styles=(
        "Blue_Blooming",
        "Crypto_Punks",
        "Dreamweave",
        "Foliage_Patchwork",
        "Impasto",
        "Palette_Knife",
        "Pointillism",
        "Rainwash",
        "Realistic_Watercolor",
        "Techno",
    ),
    objects=(
        "Architectures",
        "Bears",
        "Birds",
        "Butterfly",
        "Cats",
        "Dogs",
        "Fishes",
        "Flame",
        "Flowers",
        "Frogs",
        "Horses",
        "Human",
        "Jellyfish",
        "Rabbits",
        "Sandwiches",
        "Sea",
        "Statues",
        "Towers",
        "Trees",
        "Waterfalls",
    ),
    photo="Photo",
    aliases={"seed_images": "Photo"},
)


def get_catalogue(name: str) -> Catalogue:
    """The registered catalogue called ``name`` (``mini`` or ``unlearncanvas``)."""
    _load_builtin()
    return registered_catalogue(name)


def catalogue_names() -> tuple[str, ...]:
    _load_builtin()
    return registered_names()


def _load_builtin() -> None:
    # canvas-mini (numpy, PIL, datasets) registers itself on import: imported when first asked for
    import spare.data.canvas_mini  # noqa: F401


register_catalogue(UNLEARNCANVAS)
