"""Markdown and HTML split at headings: the cases library header splitters get wrong.

langchain-text-splitters' ``MarkdownHeaderTextSplitter`` and ``HTMLHeaderTextSplitter``
were measured against these (see the docstring of ``tools.documents.loaders``); each
test names what they did instead.
"""

from __future__ import annotations

import pytest

from tools.documents.loaders import html_sections, markdown_sections

# --- Markdown ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "title"),
    [
        ("# Guide ##", "Guide"),  # closing hashes (the library kept "Guide ##")
        ("## Guide", "Guide"),
        ("   ### Guide ###   ", "Guide"),
        ("# **Guide**", "Guide"),
    ],
)
def test_atx_heading_titles(line: str, title: str) -> None:
    assert markdown_sections(f"{line}\n\nBody.\n") == [(title, f"{line.strip()}\n\nBody.")]


@pytest.mark.parametrize(("underline", "level"), [("=====", 1), ("-----", 2), ("==", 1)])
def test_setext_headings(underline: str, level: int) -> None:
    # the library has no setext headings: "Usage" stayed in the section before it
    text = f"# Top\n\nIntro.\n\n## Middle\n\nText.\n\nUsage\n{underline}\n\nRun it.\n"
    path = "Usage" if level == 1 else "Top > Usage"
    assert markdown_sections(text)[-1] == (path, f"Usage\n{underline}\n\nRun it.")


@pytest.mark.parametrize(
    "lookalike",
    [
        "#hashtag is not a heading",
        "    # indented code, not a heading",
        "```\n# in a backtick fence\n```",
        "~~~python\n# in a tilde fence\n~~~",
        # CommonMark: only a fence of the same character, at least as long and with
        # nothing after it, closes a block (the library closed at any "```").
        "````\n```\n# in a fence of four\n```\n````",
        "~~~~~\n~~~\n# in a tilde fence of five\n~~~~\n~~~~~",
        "```\n~~~\n# tildes do not close backticks\n~~~\n```",
        "~~~\n```\n# backticks do not close tildes\n```\n~~~",
        "```\n``` python\n# a fence with an info string does not close\n```",
        "```\n# closed by a longer fence\n`````",
        "   ````\n# indented opening fence\n   ````",
    ],
)
def test_things_that_look_like_headings_are_not(lookalike: str) -> None:
    sections = markdown_sections(f"# Guide\n\nIntro.\n\n{lookalike}\n\nAfter.\n")
    assert [title for title, _ in sections] == ["Guide"]
    assert sections[0][1].endswith("After.")


@pytest.mark.parametrize(
    "fence",
    [
        "````\ncode\n```\nstill code\n````",  # a shorter fence inside
        "```js\ncode\n```",
        "~~~~\ncode\n~~~~~~",
    ],
)
def test_a_heading_after_a_closed_fence_is_a_heading(fence: str) -> None:
    sections = markdown_sections(f"# Guide\n\n{fence}\n\n## After\n\nText.\n")
    assert [title for title, _ in sections] == ["Guide", "Guide > After"]


def test_paragraph_breaks_are_kept() -> None:
    # the library re-joined lines with "  \n": the chunker's paragraph separator was gone
    (section,) = markdown_sections("# Guide\n\nFirst paragraph.\n\nSecond paragraph.\n")
    assert section == ("Guide", "# Guide\n\nFirst paragraph.\n\nSecond paragraph.")


def test_a_heading_without_body_is_not_glued_to_the_next_section() -> None:
    # the library put "## Install" at the top of the Linux section's text
    sections = markdown_sections("# Guide\n\nIntro.\n\n## Install\n\n### Linux\n\nRun it.\n")
    assert sections[-1] == ("Guide > Install > Linux", "### Linux\n\nRun it.")


def test_front_matter_is_text_before_the_first_heading() -> None:
    text = "---\ntitle: Guide\ntags: [a, b]\n---\n# Guide\n\nBody.\n"
    assert markdown_sections(text) == [
        (None, "---\ntitle: Guide\ntags: [a, b]\n---"),
        ("Guide", "# Guide\n\nBody."),
    ]


# --- HTML ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hidden",
    [
        "<script>HIDDEN()</script>",
        "<style>.HIDDEN { color: red }</style>",
        "<noscript>HIDDEN</noscript>",  # the library kept it
        "<template><p>HIDDEN</p></template>",  # the library kept it
        "<svg><text>HIDDEN</text></svg>",  # the library kept it
        "<iframe>HIDDEN</iframe>",  # the library kept it
        "<object>HIDDEN</object>",
        "<canvas>HIDDEN</canvas>",
        "<!-- HIDDEN -->",  # the library kept comments
    ],
)
def test_invisible_html_is_dropped(hidden: str) -> None:
    html = f"<html><body><h2>Hours</h2><p>Open daily.</p>{hidden}<p>Closed in May.</p></body>"
    assert html_sections(html) == [("Hours", "Hours\n\nOpen daily.\n\nClosed in May.")]


def test_inline_text_keeps_its_order() -> None:
    # the library gave "| |" first, then "Home", "Our bread", "Contact" on lines of their own
    html = '<nav><a href="/">Home</a> | <a href="/b">Our bread</a> | <a>Contact</a></nav>'
    html += "<h1>Bakery</h1><p>Open <b>Tuesday</b> to <i>Saturday</i>.</p>"
    assert html_sections(html) == [
        (None, "Home | Our bread | Contact"),
        ("Bakery", "Bakery\n\nOpen Tuesday to Saturday."),
    ]


def test_the_heading_opens_its_sections_text() -> None:
    # the library returned each heading as a document of its own, apart from its text
    html = "<h1>Kettle</h1><h2>Cleaning</h2><p>Use vinegar.</p><h2>Warranty</h2><p>7 years.</p>"
    assert html_sections(html) == [
        ("Kettle > Cleaning", "Cleaning\n\nUse vinegar."),
        ("Kettle > Warranty", "Warranty\n\n7 years."),
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<p>Intro.</p><h1>Kettle</h1><p>Text.</p>", (None, "Kettle FAQ\n\nIntro.")),
        ("<h1>Kettle</h1><p>Text.</p>", (None, "Kettle FAQ")),
    ],
)
def test_the_page_title_comes_before_the_first_heading(
    body: str, expected: tuple[None, str]
) -> None:
    # the library dropped <title>
    html = f"<html><head><title>Kettle FAQ</title></head><body>{body}</body></html>"
    assert html_sections(html)[0] == expected


# --- HTML hidden by its markup -------------------------------------------------------


@pytest.mark.parametrize(
    "hidden",
    [
        '<div style="display:none">HIDDEN</div>',
        '<div style="display: none">HIDDEN</div>',
        '<div style="DISPLAY : NONE ;">HIDDEN</div>',
        '<div style="color: red; display:none !important">HIDDEN</div>',
        '<div style="display:none!IMPORTANT">HIDDEN</div>',
        "<div style='display:\tnone'>HIDDEN</div>",
        '<div style="/* off */ display: /* really */ none">HIDDEN</div>',
        '<div style="display:block; display:none">HIDDEN</div>',  # the last one counts
        '<span style="visibility:hidden">HIDDEN</span>',
        '<span style="visibility : HIDDEN">HIDDEN</span>',
        '<tr style="visibility: collapse"><td>HIDDEN</td></tr>',
        "<p hidden>HIDDEN</p>",
        '<p hidden="">HIDDEN</p>',
        '<p hidden="hidden">HIDDEN</p>',
        "<p HIDDEN>HIDDEN</p>",
        '<p aria-hidden="true">HIDDEN</p>',
        '<p aria-hidden="TRUE">HIDDEN</p>',
        "<p aria-hidden=' true '>HIDDEN</p>",
        '<div style="display:none"><p>HIDDEN <b>deeply</b> nested</p></div>',
        '<div hidden><div style="display:block">HIDDEN inside a hidden div</div></div>',
        '<input type="hidden" name="token" value="HIDDEN">',
        '<input type="HIDDEN" value="HIDDEN">',
    ],
)
def test_html_hidden_by_markup_is_dropped(hidden: str) -> None:
    html = f"<html><body><h2>Hours</h2><p>Open daily.</p>{hidden}<p>Closed in May.</p></body>"
    assert html_sections(html) == [("Hours", "Hours\n\nOpen daily.\n\nClosed in May.")]


def test_a_hidden_heading_opens_no_section() -> None:
    html = '<h2>Hours</h2><p>Open.</p><h3 style="display:none">Secret</h3><p>Shown.</p>'
    assert html_sections(html) == [("Hours", "Hours\n\nOpen.\n\nShown.")]


@pytest.mark.parametrize(
    "visible",
    [
        '<p style="display:block">SHOWN</p>',
        '<p style="display: inline-none-ish">SHOWN</p>',  # not a display:none
        '<p style="visibility:visible">SHOWN</p>',
        '<p aria-hidden="false">SHOWN</p>',
        '<p hidden="until-found">SHOWN</p>',  # found by searching the page: content
        '<p data-hidden="true">SHOWN</p>',
        '<p class="hidden">SHOWN</p>',  # stylesheets are not evaluated
        '<p title="display:none">SHOWN</p>',
        '<div style="visibility:hidden"><span style="visibility:visible">SHOWN</span></div>',
    ],
)
def test_html_that_is_not_hidden_is_kept(visible: str) -> None:
    html = f"<body><h2>Hours</h2><p>Open daily.</p>{visible}</body>"
    ((_, text),) = html_sections(html)
    assert "SHOWN" in text


def test_visibility_hidden_hides_only_what_is_not_made_visible_again() -> None:
    html = (
        '<h2>Hours</h2><div style="visibility:hidden">GONE <span>GONE TOO '
        '<b style="visibility: visible">BACK</b></span> <i style="visibility:inherit">'
        "GONE AS WELL</i></div><p>Closed in May.</p>"
    )
    ((_, text),) = html_sections(html)
    assert "GONE" not in text
    assert "BACK" in text and "Closed in May." in text


def test_a_page_that_is_all_hidden_has_no_sections() -> None:
    assert html_sections('<body style="display:none"><h1>A</h1><p>B</p></body>') == []
