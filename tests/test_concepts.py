import pytest

from spare.concepts import UNLEARNCANVAS, Concept, UnknownConceptError, get_catalogue, normalise


def test_unlearncanvas_catalogue_is_exact():
    uc = UNLEARNCANVAS
    assert len(uc.styles) == 50 and len(set(uc.styles)) == 50
    assert len(uc.styles + uc.extra_styles) == 60 and len(set(uc.styles + uc.extra_styles)) == 60
    assert len(uc.objects) == 20 and len(set(uc.objects)) == 20
    assert uc.style_classes[-1] == "Photo" and len(uc.style_classes) == 51
    assert uc.styles[0] == "Abstractionism" and uc.styles[-1] == "Winter"
    for name in ("Van_Gogh", "Red_Blue_Ink", "Crayon", "Ukiyoe", "Sponge_Dabbed"):
        assert name in uc.styles
    for name in ("Pointillism", "Techno", "Realistic_Watercolor"):
        assert name in uc.extra_styles and name not in uc.styles
    assert uc.objects[:3] == ("Architectures", "Bears", "Birds") and uc.objects[-1] == "Waterfalls"


def test_prompt_template_shows_underscores_as_spaces():
    assert UNLEARNCANVAS.prompt("Van_Gogh", "Dogs") == "A Dogs image in Van Gogh style."
    assert UNLEARNCANVAS.prompt("Photo", "Cats") == "A Cats image in Photo style."
    assert UNLEARNCANVAS.parse_prompt("A Jellyfish image in Red Blue Ink style.") == ("Red_Blue_Ink", "Jellyfish")


@pytest.mark.parametrize("spelling", ["Van_Gogh", "Van Gogh", "van gogh", "VAN-GOGH", "  van__gogh "])
def test_lookup_accepts_spelling_variants(spelling):
    assert UNLEARNCANVAS.style(spelling) == "Van_Gogh"
    assert UNLEARNCANVAS.target(f"style:{spelling}") == Concept("style", "Van_Gogh")


def test_seed_images_folder_is_the_photo_class():
    assert UNLEARNCANVAS.style("Seed_Images") == "Photo"
    assert normalise("Seed Images") == "seed_images"


def test_unknown_name_lists_valid_names_and_suggests_nearest():
    with pytest.raises(UnknownConceptError) as err:
        UNLEARNCANVAS.style("Van Gohg")
    message = str(err.value)
    assert "Did you mean 'Van_Gogh'" in message
    assert "Abstractionism" in message and "Winter" in message  # the valid names are listed
    with pytest.raises(UnknownConceptError, match="Did you mean 'Dogs'"):
        UNLEARNCANVAS.object("dogz")


def test_targets_are_written_kind_colon_name():
    assert str(UNLEARNCANVAS.target("object:dogs")) == "object:Dogs"
    assert UNLEARNCANVAS.target("style:Crayon").slug == "style-Crayon"
    with pytest.raises(UnknownConceptError, match="style:<Name>"):
        UNLEARNCANVAS.target("Crayon")
    with pytest.raises(UnknownConceptError, match="style:<Name>"):
        UNLEARNCANVAS.target("colour:Crayon")
    # photo and the ten non-benchmark styles exist but are never targets
    with pytest.raises(UnknownConceptError):
        UNLEARNCANVAS.target("style:Photo")
    with pytest.raises(UnknownConceptError):
        UNLEARNCANVAS.target("style:Techno")
    assert len(UNLEARNCANVAS.targets) == 70


def test_surrogates():
    assert UNLEARNCANVAS.surrogate(Concept("style", "Monet")) == Concept("style", "Photo")
    assert UNLEARNCANVAS.surrogate(Concept("object", "Dogs"), "cats") == Concept("object", "Cats")
    assert UNLEARNCANVAS.surrogate(Concept("object", "Dogs")) == Concept("object", "Fishes")  # next in order
    assert UNLEARNCANVAS.surrogate(Concept("object", "Waterfalls")) == Concept("object", "Architectures")
    with pytest.raises(UnknownConceptError):
        UNLEARNCANVAS.surrogate(Concept("object", "Dogs"), "Dogs")


def test_catalogue_registry():
    assert get_catalogue("mini").name == "mini"
    assert get_catalogue("UnlearnCanvas") is UNLEARNCANVAS
    with pytest.raises(UnknownConceptError, match="mini"):
        get_catalogue("mini-canvas-xl")
