"""report.html in a real headless chromium: the checks of the pipeline test see a broken page as broken."""
import pytest

from benchmark import html_report


def test_a_missing_figure_is_refused_when_writing(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.png"):
        html_report.write(tmp_path / "report.html", "# R\n\n![gone](figures/gone.png)\n", title="R")


@pytest.mark.timeout(120)
def test_the_browser_sees_a_broken_image_and_its_console_error(tmp_path, browser):
    page = tmp_path / "report.html"
    page.write_text(html_report.render("# R\n\n| a |\n|---|\n| 1 |\n\n![gone](figures/gone.png)\n",
                                       title="R"))
    seen = browser(page)
    assert seen.title == "R" and seen.tables == 1
    assert [img["naturalWidth"] for img in seen.images] == [0]
    assert any("gone.png" in e["message"] or "ERR_FILE_NOT_FOUND" in e["message"]
               for e in seen.console_errors)
