import io

from rlkit.core.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_draws_on_a_terminal():
    stream = Terminal()
    with progress_bar(10, "iteration 3: training", file=stream) as bar:
        bar.update(4)
        bar.refresh()
    text = stream.getvalue()
    assert "iteration 3: training" in text
    assert "4/10" in text


def test_bar_is_quiet_when_the_output_is_not_a_terminal():
    stream = io.StringIO()
    with progress_bar(10, "iteration 3: training", file=stream) as bar:
        bar.update(10)
    assert stream.getvalue() == ""
