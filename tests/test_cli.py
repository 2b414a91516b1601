from spare.cli import main


def test_concepts_lists_the_catalogue(capsys):
    assert main(["concepts", "--benchmark", "unlearncanvas"]) == 0
    out = capsys.readouterr().out
    assert "50 benchmark styles + Photo, 20 objects" in out and "Van_Gogh" in out


def test_unknown_target_is_a_one_line_error(capsys):
    assert main(["data", "split", "--target", "style:Neon Outlne"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Did you mean 'Neon_Outline'" in err and "Chalkboard" in err


def test_unknown_benchmark_is_a_one_line_error(capsys):
    assert main(["concepts", "--benchmark", "imagenet"]) == 2
    assert "Valid catalogues: unlearncanvas, mini" in capsys.readouterr().err


def test_split_prints_forget_and_retain(capsys):
    assert main(["data", "split", "--target", "object:star", "--surrogate", "Disc"]) == 0
    out = capsys.readouterr().out
    assert "target object:Star, surrogate object:Disc" in out
    assert "'A Star image in Ink Outline style.' -> 'A Disc image in Ink Outline style.'" in out


def test_preview_writes_png(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["data", "preview", "--out", str(out), "--scale", "1"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
