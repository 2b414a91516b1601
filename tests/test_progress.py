"""Progress in a log file: whole lines, never carriage returns or cursor codes."""

import io

import spare.progress as progress


def test_a_bar_written_to_a_file_is_plain_periodic_lines(monkeypatch):
    monkeypatch.setattr(progress, "LINE_INTERVAL_S", 0.0)
    log = io.StringIO()  # not a terminal
    for _ in progress.tqdm(range(3), desc="answers", unit="img", file=log):
        pass
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith("answers:   0%") and lines[-1].startswith("answers: 100%") and "3/3" in lines[-1]
    assert all(len(line) <= 100 for line in lines)


def test_a_slow_interval_still_ends_with_the_final_count(monkeypatch):
    monkeypatch.setattr(progress, "LINE_INTERVAL_S", 3600.0)
    log = io.StringIO()
    bar = progress.tqdm(total=50, desc="sweep", file=log)
    for _ in range(50):
        bar.set_postfix(loss="0.1")  # a postfix waits for the next line, it does not force one
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "50/50" in lines[-1]  # the first line, then the count at close


def test_library_bars_stay_out_of_a_log(capfd):
    """transformers' weight-loading bar (and datasets' and diffusers') redraw with carriage
    returns; loading a model with stderr not a terminal (here: captured) shows none of them."""
    import datasets
    import diffusers
    import transformers

    from spare.paths import MINI_BASE_MODEL
    from spare.pipeline import T2IPipeline

    transformers.utils.logging.enable_progress_bar()  # as a fresh process has them
    diffusers.utils.logging.enable_progress_bar()
    datasets.enable_progress_bars()
    T2IPipeline.from_pretrained(MINI_BASE_MODEL)
    err = capfd.readouterr().err
    assert "\r" not in err and "\x1b[" not in err, err[:300]
